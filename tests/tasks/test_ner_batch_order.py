"""--batch-order random: a new random partition of the training sentences every epoch."""

import pytest

from addrop_fairseq.errors import AddropError
from test_ner_fixtures import prepared_corpus, tagging_setup


def epoch_batches(task, epoch, **kwargs):
    iterator = task.get_batch_iterator(dataset=task.dataset("train"), seed=7, epoch=epoch, **kwargs)
    return [sample["id"].tolist() for sample in iterator.next_epoch_itr(shuffle=True)]


def test_random_batches_cover_every_sentence_once_and_change_each_epoch(tmp_path):
    data = prepared_corpus(tmp_path)
    task, _, _ = tagging_setup(data, "--batch-order", "random")
    sentences = len(task.dataset("train"))
    first = epoch_batches(task, 1, max_sentences=16)
    assert sorted(i for batch in first for i in batch) == list(range(sentences))
    assert [len(b) for b in first[:-1]] == [16] * (len(first) - 1)

    task2, _, _ = tagging_setup(data, "--batch-order", "random")
    assert epoch_batches(task2, 1, max_sentences=16) == first  # same seed and epoch: same batches
    iterator = task2.get_batch_iterator(dataset=task2.dataset("train"), max_sentences=16, seed=7)
    iterator.next_epoch_itr(shuffle=True)
    second = [s["id"].tolist() for s in iterator.next_epoch_itr(shuffle=True)]
    assert sorted(map(sorted, second)) != sorted(map(sorted, first))  # a new partition
    assert sorted(i for batch in second for i in batch) == list(range(sentences))

    # the default keeps fairseq's length-bucketed batches, the same sets every epoch
    plain, _, _ = tagging_setup(data)
    iterator = plain.get_batch_iterator(dataset=plain.dataset("train"), max_sentences=16, seed=7)
    one = sorted(sorted(s["id"].tolist()) for s in iterator.next_epoch_itr(shuffle=True))
    two = sorted(sorted(s["id"].tolist()) for s in iterator.next_epoch_itr(shuffle=True))
    assert one == two


def test_random_batches_need_a_sentence_count(tmp_path):
    task, _, _ = tagging_setup(prepared_corpus(tmp_path), "--batch-order", "random")
    with pytest.raises(AddropError, match="--batch-size"):
        epoch_batches(task, 1, max_tokens=800)
