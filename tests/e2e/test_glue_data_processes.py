"""The tests of data/test_glue_data.py that start a process (marked slow by this folder's conftest); the module's helpers and fixtures are shared."""
from test_glue_data import (  # noqa: F401
    make_tokenizer,
    pytest,
    run_cli,
    write_mrpc,
)


@pytest.mark.slow
def test_the_command_prints_one_error_line_and_exits_1(tmp_path):
    raw = write_mrpc(tmp_path / "raw", sizes=(4, 4, 0))
    (raw / "test.tsv").write_text("index\tsentence\n0\tx\n")
    result = run_cli("addrop_fairseq.cli.prepare_glue", "--task", "mrpc", "--input", raw,
                     "--dest", tmp_path / "out", "--hf-tokenizer", make_tokenizer(tmp_path / "tok"),
                     check=False)
    assert result.returncode == 1
    assert result.stderr == (f"addrop-prepare-glue: error: {raw / 'test.tsv'}:1: no column "
                             "'#1 String' in the header ('index', 'sentence'); is this the MRPC "
                             "test file?\n")
    assert not (tmp_path / "out").exists()
