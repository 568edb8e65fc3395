"""The tests of data/test_ner_prepare.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_ner_prepare import (  # noqa: F401
    pytest,
    run_cli,
    write_corpus,
)


@pytest.mark.slow
def test_the_command_prints_one_error_line_and_exits_1(tmp_path):
    source = write_corpus(tmp_path / "conll")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "kept").write_text("")
    result = run_cli("addrop_fairseq.cli.prepare_conll2003", "--conll-dir", source, "--dest",
                     tmp_path / "data", "--tokenizer", "whitespace", check=False)
    assert result.returncode == 1
    assert result.stderr == (f"addrop-prepare-conll2003: error: --dest {tmp_path / 'data'} exists "
                             "and is not empty; pass --force to replace it whole, or choose "
                             "another --dest\n")
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["kept"]
