"""GLUE metrics: each equals scikit-learn/scipy and its textbook formula on known predictions, and
validation computes them over the whole split, not per batch."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, rankdata, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

from addrop_fairseq.data import glue
from test_glue_criterion import build, prepared

PREDICTIONS = [1, 1, 0, 0, 1, 0, 1, 1, 0, 1]
TARGETS = [1, 0, 0, 1, 1, 0, 1, 0, 0, 0]  # TP 3, FP 3, TN 3, FN 1


def test_classification_metrics_on_known_predictions():
    values = glue.glue_metrics(("accuracy", "f1", "acc_and_f1", "mcc"), PREDICTIONS, TARGETS)
    tp, fp, tn, fn = 3, 3, 3, 1
    f1 = 2 * tp / (2 * tp + fp + fn)
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert values["accuracy"] == pytest.approx(0.6, abs=1e-12)
    assert values["f1"] == pytest.approx(f1, abs=1e-12) == f1_score(TARGETS, PREDICTIONS)
    assert values["acc_and_f1"] == pytest.approx((0.6 + f1) / 2, abs=1e-12)
    assert values["mcc"] == pytest.approx(mcc, abs=1e-12)
    assert values["mcc"] == pytest.approx(matthews_corrcoef(TARGETS, PREDICTIONS), abs=1e-12)


def test_f1_counts_the_named_positive_class():
    flipped = glue.glue_metrics(("f1",), [1 - p for p in PREDICTIONS], [1 - t for t in TARGETS],
                                positive=0)
    assert flipped["f1"] == pytest.approx(f1_score(TARGETS, PREDICTIONS), abs=1e-12)


def test_multiclass_mcc_and_accuracy():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 3, 200)
    predictions = np.where(rng.random(200) < 0.7, targets, rng.integers(0, 3, 200))
    values = glue.glue_metrics(("accuracy", "mcc"), predictions, targets)
    assert values["accuracy"] == pytest.approx(float(np.mean(predictions == targets)), abs=1e-12)
    assert values["mcc"] == pytest.approx(matthews_corrcoef(targets, predictions), abs=1e-12)


def test_correlations_on_known_scores():
    rng = np.random.default_rng(1)
    targets = rng.uniform(0, 5, 100)
    predictions = targets + rng.normal(0, 1, 100)
    values = glue.glue_metrics(("pearson", "spearman", "pearson_and_spearman"), predictions, targets)
    pearson = np.corrcoef(predictions, targets)[0, 1]
    spearman = np.corrcoef(rankdata(predictions), rankdata(targets))[0, 1]
    assert values["pearson"] == pytest.approx(pearson, abs=1e-10)
    assert values["pearson"] == pytest.approx(pearsonr(predictions, targets)[0], abs=1e-10)
    assert values["spearman"] == pytest.approx(spearman, abs=1e-10)
    assert values["spearman"] == pytest.approx(spearmanr(predictions, targets)[0], abs=1e-10)
    assert values["pearson_and_spearman"] == pytest.approx((pearson + spearman) / 2, abs=1e-10)


def test_undefined_correlation_of_a_constant_prediction_is_zero():
    assert glue.glue_metrics(("pearson", "spearman"), [2.0] * 5, [0, 1, 2, 3, 4]) == {
        "pearson": 0.0, "spearman": 0.0}


def test_unknown_metric_and_length_mismatch_are_errors():
    with pytest.raises(ValueError, match="unknown GLUE metric 'auc'"):
        glue.glue_metrics(("auc",), [1], [1])
    with pytest.raises(ValueError, match="2 predictions for 3 targets"):
        glue.glue_metrics(("accuracy",), [1, 0], [1, 0, 1])


def validate(task, criterion, batches):
    """What fairseq's validate() does with the logging outputs of each batch."""
    from fairseq.logging import metrics

    with metrics.aggregate(new_root=True) as agg:
        for predictions, targets in batches:
            log = {"loss": 0.0, "ntokens": len(targets), "nsentences": len(targets),
                   "sample_size": len(targets), "glue_pred": torch.tensor(predictions),
                   "glue_target": torch.tensor(targets),
                   "ncorrect": sum(int(p == t) for p, t in zip(predictions, targets))}
            with metrics.aggregate():  # trainer._reduce_and_log_stats, once per batch
                task.reduce_metrics([log], criterion)
        return agg.get_smoothed_values()


def test_validation_metrics_cover_the_whole_split_not_a_mean_over_batches(tmp_path):
    _, task, _, criterion = build(prepared(tmp_path))
    batches = [(PREDICTIONS[:3], TARGETS[:3]), (PREDICTIONS[3:], TARGETS[3:])]
    stats = validate(task, criterion, batches)
    expected = glue.glue_metrics(("accuracy", "f1", "acc_and_f1"), PREDICTIONS, TARGETS)
    assert stats["f1"] == pytest.approx(100 * expected["f1"], abs=1e-9)
    assert stats["acc_and_f1"] == pytest.approx(100 * expected["acc_and_f1"], abs=1e-9)
    assert stats["accuracy"] == pytest.approx(100 * expected["accuracy"], abs=0.05)
    per_batch = np.mean([glue.glue_metrics(("f1",), p, t)["f1"] for p, t in batches])
    assert abs(100 * per_batch - stats["f1"]) > 1  # the batch mean would have been wrong
    assert not any(key.startswith("_glue") for key in stats)  # kept out of the printed log


def test_regression_validation_logs_pearson_and_spearman(tmp_path):
    _, task, _, criterion = build(prepared(tmp_path, "stsb"), "--regression-target")
    rng = np.random.default_rng(2)
    targets = rng.uniform(0, 5, 30).astype(np.float32)
    predictions = (targets + rng.normal(0, 1, 30)).astype(np.float32)
    stats = validate(task, criterion, [(predictions[:7].tolist(), targets[:7].tolist()),
                                       (predictions[7:].tolist(), targets[7:].tolist())])
    assert stats["pearson"] == pytest.approx(100 * pearsonr(predictions, targets)[0], abs=1e-4)
    assert stats["spearman"] == pytest.approx(100 * spearmanr(predictions, targets)[0], abs=1e-4)
    assert "f1" not in stats and "mcc" not in stats


def test_cola_logs_matthews_correlation(tmp_path):
    data = prepared(tmp_path)
    (data / "glue.json").unlink()  # MRPC-shaped labels "0"/"1" are CoLA's too
    _, task, _, criterion = build(data, "--glue-task", "cola")
    stats = validate(task, criterion, [(PREDICTIONS[:4], TARGETS[:4]), (PREDICTIONS[4:], TARGETS[4:])])
    assert stats["mcc"] == pytest.approx(100 * matthews_corrcoef(TARGETS, PREDICTIONS), abs=1e-9)
