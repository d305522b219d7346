"""ISRG-CT point refinement: K-means in a window of image features around each click, deterministic."""

import torch

from reg2rg.isrg.prompts import PAD, REFINED_NEGATIVE, REFINED_POSITIVE, kmeans, refine_points


def _inputs():
    embeddings = torch.randn(2, 16, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    points = torch.tensor([[[13, 9, 22], [0, 0, 0]], [[31, 31, 31], [10, 5, 18]]])
    labels = torch.tensor([[1, -1], [1, 0]])
    return embeddings, points, labels


def test_refinement_is_deterministic_and_independent_of_the_batch():
    embeddings, points, labels = _inputs()
    first = refine_points(embeddings, points, labels, stride=4, window=3, clusters=3, seed=0)
    again = refine_points(embeddings, points, labels, stride=4, window=3, clusters=3, seed=0)
    alone = refine_points(embeddings[1:], points[1:], labels[1:], stride=4, window=3, clusters=3, seed=0)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert torch.equal(first[0][1], alone[0][0]) and torch.equal(first[1][1], alone[1][0])


def test_refined_points_are_cell_centres_in_the_click_window_with_refined_labels():
    embeddings, points, labels = _inputs()
    refined, refined_labels = refine_points(embeddings, points, labels, stride=4, window=3, clusters=3, seed=0)
    assert refined.shape == (2, 6, 3)
    assert refined_labels[0].tolist() == [REFINED_POSITIVE] * 3 + [PAD] * 3  # a padding click refines to padding
    assert refined_labels[1].tolist() == [REFINED_POSITIVE] * 3 + [REFINED_NEGATIVE] * 3
    assert (refined % 4 == 2).all()  # the centre voxel of a 4-voxel cell
    click_cell = points[1, 1] // 4  # (2, 1, 4): the window is cells 1-3, 0-2, 3-5
    window_cells = refined[1, 3:] // 4
    assert ((window_cells - click_cell).abs() <= 1).all()
    corner = refined[1, :3] // 4  # a click in the last cell: its window is cut to cells 6-7
    assert ((corner >= 6) & (corner <= 7)).all()


def test_each_refined_point_is_its_clusters_member_nearest_the_centroid():
    features = torch.cat([torch.randn(9, 4) * 0.1 + 5, torch.randn(9, 4) * 0.1 - 5, torch.randn(9, 4) * 0.1])[None]
    valid = torch.ones(1, 27, dtype=torch.bool)
    assignment, centroids = kmeans(features, valid, k=3, seed=0)
    # three well separated groups of 9: each is one cluster, its centroid its mean
    groups = [set(assignment[0, i * 9 : (i + 1) * 9].tolist()) for i in range(3)]
    assert all(len(g) == 1 for g in groups) and len(set.union(*groups)) == 3
    for i in range(3):
        cluster = groups[i].pop()
        torch.testing.assert_close(centroids[0, cluster], features[0, i * 9 : (i + 1) * 9].mean(0))


def test_a_different_seed_can_change_the_clusters_but_the_same_seed_never_does():
    features = torch.randn(4, 27, 8, generator=torch.Generator().manual_seed(3))
    valid = torch.ones(4, 27, dtype=torch.bool)
    runs = [kmeans(features, valid, k=3, seed=s)[0] for s in (0, 0, 1, 2, 3)]
    assert torch.equal(runs[0], runs[1])
    assert any(not torch.equal(runs[0], r) for r in runs[2:])
