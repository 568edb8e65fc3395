"""output_dir.staged_dest: a --dest is written whole or not at all, even when a Ctrl-C is
swallowed on its way up (the prepare scripts' end-to-end cases are in test_prepare_*.py)."""

import os
import signal

import pytest

from addrop_fairseq.data.output_dir import staged_dest


def _previous(dest):
    dest.mkdir()
    (dest / "old.txt").write_text("earlier run\n")


def test_a_finished_write_replaces_the_old_directory_whole(tmp_path):
    dest = tmp_path / "out"
    _previous(dest)
    with staged_dest(dest, force=True) as staging:
        (staging / "new.txt").write_text("new\n")
    assert sorted(p.name for p in dest.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging directory left


def test_a_ctrl_c_swallowed_inside_the_write_still_stops_the_commit(tmp_path, request):
    dest = tmp_path / "out"
    _previous(dest)
    # Python's own handler, as in a script started from a terminal (a suite run in the
    # background by a non-interactive shell inherits an ignored SIGINT instead)
    handler = signal.default_int_handler
    saved = signal.signal(signal.SIGINT, handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, saved))
    with pytest.raises(KeyboardInterrupt):
        with staged_dest(dest, force=True) as staging:
            (staging / "new.txt").write_text("new\n")
            try:  # as a library's bare `except:` around an import would
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(10**6):  # Python runs the handler between bytecodes, here
                    pass
                raise AssertionError("SIGINT never arrived")
            except KeyboardInterrupt:
                pass
    assert sorted(p.name for p in dest.iterdir()) == ["old.txt"]
    assert (dest / "old.txt").read_text() == "earlier run\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert signal.getsignal(signal.SIGINT) is handler  # the caller's handler is back


def test_an_ignored_sigint_stays_ignored(tmp_path):
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with staged_dest(tmp_path / "out", force=False) as staging:
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            (staging / "a.txt").write_text("a\n")
        assert (tmp_path / "out" / "a.txt").exists()
    finally:
        signal.signal(signal.SIGINT, previous)
