"""Entry point of ``python -m benchmarks``."""

from benchmarks._threads import set_thread_variables


# Before numpy, scipy or torch is imported anywhere in this process or its workers.
set_thread_variables()

from benchmarks.cli import main  # noqa: E402


if __name__ == "__main__":
    raise SystemExit(main())
