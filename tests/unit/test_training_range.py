"""Cleaning a prediction up with the training range's anatomy (`drop_misplaced_pieces`)."""

import numpy as np

from deepnuclei.training_range import anatomy_statistics, drop_misplaced_pieces, training_range

CLASSES = ["BIG", "SMALL"]
AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])  # 1 x 1 x 2 mm, as the bundles read


def head(small_at: tuple[int, int, int]) -> np.ndarray:
    """A large structure and a small one beside it (task class indices 1 and 2)."""
    labels = np.zeros((80, 80, 40), np.uint8)
    labels[30:50, 30:50, 15:25] = 1
    x, y, z = small_at
    labels[x:x + 4, y:y + 4, z:z + 2] = 2
    return labels


def known() -> dict:
    """The range of four training heads whose small structure sits 1 to 2 voxels apart."""
    heads = [head((52 + shift, 38, 18)) for shift in (0, 1)] + [head((52, 38 + shift, 19)) for shift in (0, 2)]
    return training_range([[{"p50": 0.5}]] * len(heads), [anatomy_statistics(h, AFFINE, CLASSES) for h in heads],
                          CLASSES)


def test_a_far_piece_larger_than_the_true_one_is_dropped_and_a_near_one_kept() -> None:
    labels = head((52, 38, 18))
    labels[5:13, 5:13, 2:6] = 2  # an 'artefact' labelled SMALL, 40 mm and more away, twice its size
    labels[58:60, 38:40, 18] = 2  # a near second piece: kept
    cleaned = drop_misplaced_pieces(labels, AFFINE, CLASSES, known())
    assert (labels[5:13, 5:13, 2:6] == 2).all() and not cleaned[5:13, 5:13, 2:6].any()
    assert (cleaned[52:56, 38:42, 18:20] == 2).all() and (cleaned[58:60, 38:40, 18] == 2).all()
    assert (cleaned == 1).sum() == (labels == 1).sum()  # the one-piece structure untouched


def test_a_structure_with_every_piece_misplaced_keeps_its_nearest() -> None:
    labels = head((52, 38, 18))
    labels[labels == 2] = 0
    labels[5:9, 5:9, 2:4] = 2
    labels[70:74, 70:74, 34:36] = 2
    cleaned = drop_misplaced_pieces(labels, AFFINE, CLASSES, known())
    assert (cleaned == 2).sum() == 32 and cleaned[70:74, 70:74, 34:36].all()  # nearer the expected place


def test_without_a_record_the_labels_pass_as_they_are() -> None:
    labels = head((52, 38, 18))
    labels[5:13, 5:13, 2:6] = 2
    assert drop_misplaced_pieces(labels, AFFINE, CLASSES, None) is labels
