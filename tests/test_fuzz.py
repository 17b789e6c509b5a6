"""``gradcheck fuzz``: finds a planted size-dependent bug and shrinks it to the smallest failing configuration."""

import textwrap

import pytest

import lstm_ref
from gradcheck import check, cli
from gradcheck.cli import fuzz as fz
from gradcheck.cli import loading
from gradcheck.errors import UsageError
from gradcheck.lstm.mutants import BY_NAME
from gradcheck.lstm.reference import ReferenceLSTM

SMALLEST = {"x_dim": 1, "hidden": 4, "steps": 3, "seed": 0, "variant": "simple"}


def planted_backward(params, trace, dl_dh):
    """Drops dL(t+1)/ds(t), but only when hidden > 3 and T > 2."""
    T, hidden = trace.h.shape
    if hidden > 3 and T > 2:
        return BY_NAME["drop_ds_next"].backward(params, trace, dl_dh)
    return lstm_ref.backward(params, trace, dl_dh)


def planted(*, x_dim=3, hidden=4, steps=5, seed=0, variant="simple"):
    return ReferenceLSTM(x_dim, hidden, steps, seed=seed, variant=variant, backward=planted_backward)


@pytest.mark.parametrize("search_seed", [0, 1, 2])
def test_planted_size_bug_shrinks_to_the_smallest_configuration(search_seed):
    r = fz.fuzz(planted, budget=60, seed=search_seed, spec="mod:planted")
    assert r.kind == "fail" and r.config == SMALLEST
    assert (
        r.command
        == "gradcheck run --model mod:planted --x-dim 1 --hidden 4 --steps 3 --seed 0 --variant simple"
    )
    assert "s[t=1]" in r.failing_rows and "s[t=2]" not in r.failing_rows


def test_the_smallest_configuration_is_minimal():
    """Each size one smaller passes: the reported configuration is a boundary, not just some failure."""
    assert not check(planted(**SMALLEST), diagnose=False).passed
    for key in ("hidden", "steps"):
        smaller = dict(SMALLEST, **{key: SMALLEST[key] - 1})
        assert check(planted(**smaller), diagnose=False).passed


def test_reference_has_no_failing_configuration():
    r = fz.fuzz(budget=15, seed=0)
    assert r.config is None and r.kind is None and r.examples >= 15


def test_only_accepted_keywords_are_varied_and_passed():
    seen = []

    def only_sizes(hidden, steps):
        seen.append((hidden, steps))
        return ReferenceLSTM(2, hidden, steps)

    assert fz.accepted_keys(only_sizes) == ("hidden", "steps")
    r = fz.fuzz(only_sizes, budget=5, seed=0)
    assert r.config is None and len(seen) >= 5
    assert fz.accepted_keys(lambda **kw: None) == fz.CONFIG_KEYS


def test_a_model_that_raises_is_reported_at_its_smallest_configuration():
    def fragile(*, hidden=1, steps=1, seed=0):
        if hidden >= 5:
            raise RuntimeError("hidden too large for my kernel")
        return ReferenceLSTM(1, hidden, steps, seed=seed)

    r = fz.fuzz(fragile, budget=60, seed=0)
    assert r.kind == "raised" and r.config == {"hidden": 5, "steps": 1, "seed": 0}
    assert "hidden too large" in r.message


def test_unconfigurable_factory_and_bad_bounds_are_usage_errors():
    with pytest.raises(UsageError, match="accepts none of the configuration keywords"):
        fz.fuzz(lambda: ReferenceLSTM(1, 1, 1))
    with pytest.raises(UsageError, match="budget"):
        fz.fuzz(budget=0)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "fuzz_user_model.py").write_text(
        textwrap.dedent("""
        import lstm_ref
        from gradcheck.lstm.mutants import BY_NAME
        from gradcheck.lstm.reference import ReferenceLSTM

        def bptt(params, trace, dl_dh):
            T, hidden = trace.h.shape
            if hidden > 3 and T > 2:
                return BY_NAME["drop_ds_next"].backward(params, trace, dl_dh)
            return lstm_ref.backward(params, trace, dl_dh)

        def make(*, x_dim=3, hidden=4, steps=5, seed=0, variant="simple"):
            return ReferenceLSTM(x_dim, hidden, steps, seed=seed, variant=variant, backward=bptt)

        def fixed():
            return ReferenceLSTM(2, 2, 2)
    """)
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "fuzz_user_model"


def test_cli_prints_the_reproducing_command_and_exits_1(user_module, capsys):
    rc = cli.main(["fuzz", "--model", f"{user_module}:make", "--budget", "60"])
    out = capsys.readouterr().out
    expected = (
        f"gradcheck run --model {user_module}:make --x-dim 1 --hidden 4 --steps 3 --seed 0 --variant simple"
    )
    assert rc == 1 and expected in out
    # the printed configuration, loaded the way `gradcheck run` is to load it, fails; one step shorter passes
    model = loading.load_model_with_config(f"{user_module}:make", **SMALLEST)
    assert not check(model, diagnose=False).passed
    shorter = loading.load_model_with_config(f"{user_module}:make", **dict(SMALLEST, steps=2))
    assert check(shorter, diagnose=False).passed


def test_cli_reference_without_failure_exits_0(capsys):
    assert cli.main(["fuzz", "--budget", "5"]) == 0
    assert "no failing configuration" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["--model", "fuzz_user_model:fixed"], "accepts none of the configuration keywords"),
        (["--model", "no_such_module_xyz:make"], "cannot import"),
        (["--model", "fuzz_user_model:nope"], "has no 'nope'"),
        (["--model", "nocolon"], "expected MODULE:FACTORY"),
        (["--budget", "0"], "expected an integer >= 1"),
    ],
)
def test_cli_usage_errors(user_module, capsys, argv, msg):
    rc = cli.main(["fuzz", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1


def test_load_model_with_config_refuses_keys_the_factory_does_not_take(user_module):
    with pytest.raises(UsageError, match="does not accept loss"):
        loading.load_model_with_config(f"{user_module}:make", hidden=2, loss="seed")
    with pytest.raises(UsageError, match="unknown configuration keys"):
        loading.load_model_with_config(f"{user_module}:make", width=2)
    assert isinstance(loading.load_model_with_config(f"{user_module}:fixed"), ReferenceLSTM)


def test_the_printed_command_reproduces_through_gradcheck_run(user_module, capsys):
    assert cli.main(["fuzz", "--model", f"{user_module}:make", "--budget", "60"]) == 1
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("gradcheck run "))
    argv = line.split()[1:]
    assert cli.main([*argv, "--no-reports"]) == 1  # the size flags reach the factory
    shorter = [*argv[: argv.index("--steps") + 1], "2", *argv[argv.index("--steps") + 2 :]]
    assert cli.main([*shorter, "--no-reports"]) == 0
    assert cli.main(["run", "--model", f"{user_module}:make", "--no-reports"]) == 1  # make()'s own defaults


def test_run_forwards_only_flags_given_and_refuses_unknown_ones(user_module, capsys):
    assert (
        cli.main(["run", "--model", f"{user_module}:fixed", "--seed", "3", "--no-reports"]) == 0
    )  # seed: report's
    capsys.readouterr()
    assert cli.main(["run", "--model", f"{user_module}:fixed", "--hidden", "3", "--no-reports"]) == 2
    err = capsys.readouterr().err
    assert "does not accept hidden" in err and len(err.strip().splitlines()) == 1
    assert cli.main(["run", "--model", f"{user_module}:make", "--loss", "seed", "--no-reports"]) == 2
