"""``python -m gradcheck`` and the ``gradcheck`` command: the command line, with Ctrl-C during start-up (while
the command line's modules are imported, before its signal handling is in place) ending quietly with exit 130."""

import sys


def main() -> int:
    from .errors import EXIT_INTERRUPTED, INTERRUPTED

    try:
        from .cli import main as cli_main
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
