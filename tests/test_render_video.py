"""render_video: shapes, determinism, boxes that hold the label points, clipping, occlusion and visual variety."""
import numpy as np
import pytest

from savg.data.clip_format import FPS, NUM_FRAMES, PICTURE_HEIGHT, PICTURE_WIDTH
from savg.data.synthetic.render_video import render_video
from savg.data.synthetic.scene import MOUTH_HEIGHT, Entity, project, sample_person, sample_scene

SEEDS = range(16)


@pytest.fixture(scope="module")
def rendered():
    """{seed: (scene, pictures, boxes)} for 16 seeds."""
    out = {}
    for s in SEEDS:
        scene = sample_scene(s)
        out[s] = (scene, *render_video(scene))
    return out


def _box_of(boxes_k, entity):
    found = [b for b in boxes_k if b["entity"] == entity]
    return found[0]["box"] if found else None


def _inside(box, x, y, tol=0.5):
    return box[0] - tol <= x <= box[2] + tol and box[1] - tol <= y <= box[3] + tol


def _person_scene(positions, seed=0):
    """A scene from `seed` whose entities are replaced by silent people; positions: list of (x_m [20], z_m [20])."""
    scene = sample_scene(seed)
    rng = np.random.default_rng(seed)
    scene.sources = []
    scene.entities = [Entity("person", np.asarray(x, float), np.asarray(z, float), person=sample_person(rng, False),
                             mouth_open=np.zeros(NUM_FRAMES), motion=np.full(NUM_FRAMES, 0.05))
                      for x, z in positions]
    return scene


def test_shapes_dtypes_and_box_fields(rendered):
    for scene, pictures, boxes in rendered.values():
        assert pictures.dtype == np.uint8 and pictures.shape == (NUM_FRAMES, PICTURE_HEIGHT, PICTURE_WIDTH, 3)
        assert len(boxes) == NUM_FRAMES
        for frame in boxes:
            assert len({b["entity"] for b in frame}) == len(frame)
            for b in frame:
                e = scene.entities[b["entity"]]
                assert b["kind"] == e.kind
                assert b["sounding"] == (e.source is not None)
                x0, y0, x1, y1 = b["box"]
                assert 0 <= x0 < x1 <= PICTURE_WIDTH and 0 <= y0 < y1 <= PICTURE_HEIGHT
                assert 0.0 <= b["visible_fraction"] <= 1.0


def test_deterministic_and_seeds_differ(rendered):
    scene, pictures, boxes = rendered[3]
    again, boxes_again = render_video(sample_scene(3))
    assert np.array_equal(pictures, again) and boxes == boxes_again
    diff = np.abs(rendered[0][1].astype(np.int16) - rendered[1][1].astype(np.int16)).mean()
    assert diff > 10


def test_label_points_and_mouths_inside_boxes(rendered):
    checked = 0
    for scene, _, boxes in rendered.values():
        for i, src in enumerate(scene.sources):
            for k in range(NUM_FRAMES):
                t = k / FPS
                x, y = scene.source_point_px(i, t)
                if not scene.source_active(i, [t])[0] or not (0 <= x <= PICTURE_WIDTH and 0 <= y <= PICTURE_HEIGHT):
                    continue
                box = _box_of(boxes[k], src.entity)
                assert box is not None and _inside(box, x, y), (scene.seed, i, k, x, y, box)
                checked += 1
        for j, e in enumerate(scene.entities):
            if e.kind != "person":
                continue
            for k in range(NUM_FRAMES):
                x, y, _ = project(scene.camera, e.x_m[k], MOUTH_HEIGHT * e.person.height_m, e.z_m[k])
                if 0 <= x <= PICTURE_WIDTH and 0 <= y <= PICTURE_HEIGHT:
                    box = _box_of(boxes[k], j)
                    assert box is not None and _inside(box, x, y), (scene.seed, j, k)
    assert checked > 50


def test_entity_walking_out_loses_its_box():
    t = np.arange(NUM_FRAMES) / FPS
    scene = _person_scene([(0.5 + 1.5 * t, np.full(NUM_FRAMES, 3.0))])  # leaves to the right (view edge ~3.6 m)
    _, boxes = render_video(scene)
    assert _box_of(boxes[0], 0) is not None
    assert all(_box_of(boxes[k], 0) is None for k in range(17, NUM_FRAMES))
    partly = [_box_of(boxes[k], 0) for k in range(NUM_FRAMES) if _box_of(boxes[k], 0) is not None]
    assert any(b[2] == PICTURE_WIDTH for b in partly)  # clipped at the right edge on the way out


def test_nearer_person_occludes_farther():
    z = np.full(NUM_FRAMES, 1.0)
    scene = _person_scene([(np.zeros(NUM_FRAMES), 4.5 * z), (np.zeros(NUM_FRAMES), 2.5 * z)])
    pictures, boxes = render_video(scene)
    far = [b for b in boxes[5] if b["entity"] == 0][0]["visible_fraction"]
    near = [b for b in boxes[5] if b["entity"] == 1][0]["visible_fraction"]
    assert near > 0.95 and far < 0.5
    aside = _person_scene([(np.zeros(NUM_FRAMES), 4.5 * z), (np.full(NUM_FRAMES, 2.0), 2.5 * z)])
    _, boxes_aside = render_video(aside)
    assert [b for b in boxes_aside[5] if b["entity"] == 0][0]["visible_fraction"] > 0.95


def test_visual_variety(rendered):
    means, textures = [], []
    for _, pictures, _ in rendered.values():
        pic = pictures[0].astype(np.float32)
        assert pic.std() > 15  # not a flat picture
        means.append(pic.mean(axis=(0, 1)))
        grey = pic.mean(axis=2)
        high = grey[1:-1, 1:-1] - 0.25 * (grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:])
        textures.append(high.std())
    means = np.array(means)
    assert means.std(axis=0).min() > 8  # rooms differ in colour
    assert np.ptp(means.mean(axis=1)) > 30  # and in brightness
    assert max(textures) / min(textures) > 1.5  # and in texture
