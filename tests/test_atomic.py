"""Files replaced whole (addrop_fairseq.atomic): old or new, never half of each."""
import pytest

from addrop_fairseq.atomic import replacing, write_text


def test_files_made_together_replace_the_old_ones_only_together(tmp_path):
    table, plot = tmp_path / "effects.md", tmp_path / "effects.png"
    table.write_text("old table")
    plot.write_bytes(b"old plot")
    with pytest.raises(RuntimeError, match="plot failed"):
        with replacing(table, plot) as (new_table, new_plot):
            new_table.write_text("new table")
            raise RuntimeError("plot failed")
    assert table.read_text() == "old table" and plot.read_bytes() == b"old plot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["effects.md", "effects.png"]

    with replacing(table, plot) as (new_table, new_plot):
        assert new_plot.suffix == ".png" and new_plot.parent == tmp_path  # a rename, not a copy
        new_table.write_text("new table")
        new_plot.write_bytes(b"new plot")
        assert table.read_text() == "old table"  # nothing moves before the block ends
    assert table.read_text() == "new table" and plot.read_bytes() == b"new plot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["effects.md", "effects.png"]


def test_write_text_makes_the_directory_and_replaces_the_file(tmp_path):
    target = tmp_path / "docs" / "holm.md"
    write_text(target, "first\n")
    write_text(target, "second ü\n")
    assert target.read_text(encoding="utf-8") == "second ü\n"
    assert [p.name for p in target.parent.iterdir()] == ["holm.md"]
