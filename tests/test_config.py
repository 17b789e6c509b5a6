"""`[tool.gradcheck]` in the nearest pyproject.toml and GRADCHECK_* variables: precedence, validation, discovery."""

import json
import os

import pytest

import gradcheck.cli.app as cli
from gradcheck.cli import config
from gradcheck.cli.argtypes import positive_int
from gradcheck.errors import UsageError

SMALL = ["--x-dim", "3", "--hidden", "4", "--steps", "3"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith(("GRADCHECK_", "GITHUB_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def pyproject(path, body):
    path.mkdir(parents=True, exist_ok=True)
    (path / "pyproject.toml").write_text("[project]\nname = 'x'\n\n[tool.gradcheck]\n" + body)


def parsed(*argv):
    """Parse ``run`` argv with the configuration applied, as ``main`` does (no check runs)."""
    parser = cli.build_parser()
    parser.parse_args(["run", *argv])
    return cli.apply_config(parser, ["run", *argv])


# --------------------------------------------------------------------------------------------- precedence


def test_precedence_command_line_over_environment_over_pyproject_over_defaults(tmp_path, monkeypatch):
    assert parsed().seed == 0
    pyproject(tmp_path, "seed = 3\n")
    assert parsed().seed == 3
    monkeypatch.setenv("GRADCHECK_SEED", "5")
    assert parsed().seed == 5
    assert parsed("--seed", "7").seed == 7
    assert parsed("--seed", "0").seed == 0  # an explicit value equal to the default still wins


def test_every_kind_of_run_option_is_configurable(tmp_path):
    pyproject(
        tmp_path,
        (
            'x-dim = 3\nhidden = 4\nsteps = 2\nvariant = "tanh"\nloss = "seed"\nmethod = "richardson"\n'
            'eps = 1e-4\nrtol = 1e-5\natol = 0\nformat = "json"\nno-reports = true\nquiet = true\n'
            'model = "mymod:make"\njunit = "out/j.xml"\n'
        ),
    )
    args = parsed()
    assert (args.x_dim, args.hidden, args.steps, args.variant, args.loss, args.method) == (
        3,
        4,
        2,
        "tanh",
        "seed",
        "richardson",
    )
    assert (args.eps, args.rtol, args.atol, args.format, args.no_reports, args.quiet) == (
        1e-4,
        1e-5,
        0.0,
        "json",
        True,
        True,
    )
    assert args.model == "mymod:make"
    assert args.junit == str(tmp_path / "out" / "j.xml")


def test_keys_take_dashes_or_underscores(tmp_path):
    pyproject(tmp_path, "x_dim = 7\nreport_dir = 'r'\n")
    args = parsed()
    assert args.x_dim == 7 and args.report_dir == str(tmp_path / "r")


def test_environment_flags_and_values_are_read_like_command_line_text(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADCHECK_NO_REPORTS", "yes")
    monkeypatch.setenv("GRADCHECK_X_DIM", "9")
    monkeypatch.setenv("GRADCHECK_RTOL", "")  # empty means unset
    args = parsed()
    assert args.no_reports is True and args.x_dim == 9 and args.rtol is None


def test_options_added_to_the_run_parser_later_are_configurable_too(tmp_path, monkeypatch):
    parser = cli.build_parser()
    run = next(a for a in parser._actions if a.dest == "command").choices["run"]
    if "--workers" not in run._option_string_actions:  # issue 7 adds the real one
        run.add_argument("--workers", type=positive_int, default=1)
    pyproject(tmp_path, "workers = 4\n")
    assert config.load(run, cwd=tmp_path, environ={}).values["workers"] == 4
    assert config.load(run, cwd=tmp_path, environ={"GRADCHECK_WORKERS": "2"}).values["workers"] == 2
    pyproject(tmp_path, "workers = 0\n")
    with pytest.raises(UsageError, match="workers"):
        config.load(run, cwd=tmp_path, environ={})


# ---------------------------------------------------------------------------------------------- discovery


def test_the_nearest_pyproject_upwards_is_used_and_paths_are_relative_to_it(tmp_path, monkeypatch):
    pyproject(tmp_path, "seed = 11\nreport-dir = 'build/gc'\n")
    sub = tmp_path / "src" / "pkg"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    args = parsed()
    assert args.seed == 11 and args.report_dir == str(tmp_path / "build" / "gc")
    pyproject(tmp_path / "src", "seed = 12\n")  # a nearer pyproject.toml wins, even a different one
    assert parsed().seed == 12
    assert config.find_pyproject(sub) == tmp_path / "src" / "pyproject.toml"


def test_a_pyproject_without_the_table_changes_nothing(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert parsed().seed == 0


def test_configured_settings_reach_the_report(tmp_path, capsys):
    pyproject(tmp_path, "seed = 6\nx-dim = 2\nhidden = 3\nsteps = 2\nmethod = 'richardson'\n")
    assert cli.main(["run"]) == 0
    d = json.loads((tmp_path / "reports" / "gradcheck.json").read_text())
    assert d["seed"] == 6 and d["method"] == "richardson" and "x_dim=2, hidden=3, steps=2" in d["model"]


# --------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "body, needles",
    [
        ("sed = 3\n", ["unknown key 'sed'", "did you mean 'seed'"]),
        ("hiden = 4\n", ["unknown key 'hiden'", "did you mean 'hidden'"]),
        ("report_dri = 'x'\n", ["unknown key 'report_dri'", "did you mean 'report-dir'"]),
        ("hidden = 'four'\n", ["hidden", "expected an integer", "string"]),
        ("seed = 1.5\n", ["seed", "expected an integer"]),
        ("hidden = 0\n", ["hidden", ">= 1"]),
        ("eps = nan\n", ["eps", "finite"]),
        ("rtol = true\n", ["rtol", "boolean"]),
        ("no-reports = 'yes'\n", ["no-reports", "true or false"]),
        ("method = 'forward'\n", ["method", "central"]),
        ("json = 3\n", ["json", "expected a string"]),
        ("steps = [1, 2]\n", ["steps", "array"]),
        ("seed = = 3\n", ["invalid TOML"]),
    ],
)
def test_bad_pyproject_entries_exit_2_naming_the_key_and_write_nothing(tmp_path, capsys, body, needles):
    pyproject(tmp_path, body)
    assert cli.main(["run", *SMALL]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    assert str(tmp_path / "pyproject.toml") in err
    assert not (tmp_path / "reports").exists()


def test_a_bad_configuration_fails_even_when_the_command_line_overrides_the_key(tmp_path, capsys):
    pyproject(tmp_path, "seed = 'x'\n")
    assert cli.main(["run", *SMALL, "--seed", "1"]) == 2


def test_bad_environment_values_exit_2_naming_the_variable(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GRADCHECK_SEED", "abc")
    assert cli.main(["run", *SMALL]) == 2
    err = capsys.readouterr().err
    assert "GRADCHECK_SEED" in err and "integer" in err
    monkeypatch.setenv("GRADCHECK_SEED", "1")
    monkeypatch.setenv("GRADCHECK_NO_REPORTS", "maybe")
    assert cli.main(["run", *SMALL]) == 2
    assert "GRADCHECK_NO_REPORTS" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


def test_an_unknown_environment_variable_is_a_warning_with_a_suggestion(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GRADCHECK_SEEDS", "3")
    assert cli.main(["run", *SMALL, "--no-reports"]) == 0
    err = capsys.readouterr().err
    assert "ignoring GRADCHECK_SEEDS" in err and "did you mean GRADCHECK_SEED?" in err


def test_other_commands_do_not_read_the_run_configuration(tmp_path, capsys):
    pyproject(tmp_path, "sed = 3\n")
    assert cli.main(["demo", "--iterations", "1"]) == 0


# ------------------------------------------------------------------------------------ docs/ci.md stays true

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "ci.md")


@pytest.mark.skipif(not os.path.exists(DOC), reason="needs the source tree")
def test_the_documented_config_table_lists_exactly_the_run_options_and_their_variables():
    import re

    text = open(DOC).read()
    rows = re.findall(
        r"^\| `([a-z-]+)` \| `(?:-q/)?--([a-z-]+)` \| `(GRADCHECK_[A-Z_]+)` \|", text, flags=re.M
    )
    run = next(a for a in cli.build_parser()._actions if a.dest == "command").choices["run"]
    opts = config.options(run)
    assert sorted(key for key, _, _ in rows) == sorted(opts)
    for key, flag, env in rows:
        assert key == flag and env == "GRADCHECK_" + opts[key].dest.upper()


@pytest.mark.skipif(not os.path.exists(DOC), reason="needs the source tree")
def test_the_documented_pyproject_example_is_valid(tmp_path):
    import re

    (block,) = re.findall(r"```toml\n(.*?)```", open(DOC).read(), flags=re.S)
    (tmp_path / "pyproject.toml").write_text(block)
    args = parsed()
    assert args.model == "mypkg.lstm:make_model" and args.method == "richardson" and args.seed == 3


# ------------------------------------------------------------------------------- settings reach --model


FACTORIES = """
from user_models import UserLSTM
seen = {}

def sized(x_dim=3, hidden=4, steps=3, seed=0, dtype="float64"):
    seen.update(x_dim=x_dim, hidden=hidden, steps=steps, seed=seed, dtype=dtype)
    return UserLSTM(x_dim, hidden, steps, seed)

def fixed():
    return UserLSTM(3, 4, 3)
"""


@pytest.fixture
def factories(tmp_path, monkeypatch):
    import shutil
    import sys
    from pathlib import Path

    shutil.copy(Path(__file__).parent / "user_models.py", tmp_path / "user_models.py")
    (tmp_path / "cfg_models.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("cfg_models", "user_models"):
        sys.modules.pop(name, None)
    yield
    sys.modules.pop("cfg_models", None)


@pytest.mark.parametrize("source", ["pyproject", "environment", "command line"])
def test_size_settings_reach_the_factory_from_every_source(tmp_path, monkeypatch, factories, source, capsys):
    argv = ["run", "--model", "cfg_models:sized", "--no-reports"]
    if source == "pyproject":
        pyproject(tmp_path, "hidden = 2\nsteps = 2\ndtype = 'float32'\n")
    elif source == "environment":
        monkeypatch.setenv("GRADCHECK_HIDDEN", "2")
        monkeypatch.setenv("GRADCHECK_STEPS", "2")
        monkeypatch.setenv("GRADCHECK_DTYPE", "float32")
    else:
        argv += ["--hidden", "2", "--steps", "2", "--dtype", "float32"]
    assert cli.main(argv) == 0
    import cfg_models

    assert (cfg_models.seen["hidden"], cfg_models.seen["steps"], cfg_models.seen["dtype"]) == (
        2,
        2,
        "float32",
    )
    out = capsys.readouterr().out
    assert "reproduce: gradcheck run --model cfg_models:sized --hidden 2 --steps 2 --dtype float32" in out
    assert "--seed" not in out.split("reproduce:")[1]  # the factory was not given a seed: none is promised


@pytest.mark.parametrize(
    "setup, named",
    [
        (lambda tmp, mp: pyproject(tmp, "hidden = 2\n"), "hidden (from [tool.gradcheck] of"),
        (lambda tmp, mp: mp.setenv("GRADCHECK_DTYPE", "float32"), "dtype (from environment GRADCHECK_DTYPE)"),
        (lambda tmp, mp: None, "variant (from the command line)"),
    ],
)
def test_a_setting_the_factory_does_not_take_is_a_usage_error_naming_it(
    tmp_path, monkeypatch, factories, capsys, setup, named
):
    setup(tmp_path, monkeypatch)
    argv = ["run", "--model", "cfg_models:fixed", "--no-reports"]
    if "command line" in named:
        argv += ["--variant", "tanh"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert named in err and "cfg_models:fixed does not accept" in err
    assert not (tmp_path / "reports").exists()
