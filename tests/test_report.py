from conftest import cached_build


def test_memory_report_text_and_timeline_plot(tmp_path):
    art = cached_build("resnet_tiny")
    text = str(art.memory)
    assert "train_step" in text and "lower bound" in text and "trainable state" in text
    rows = art.memory.tensor_table()
    assert rows and all(size > 0 and end > start for _, _, _, size, start, end in rows)
    png = art.memory.plot(tmp_path / "memory.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
