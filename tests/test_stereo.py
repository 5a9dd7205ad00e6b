import numpy as np

from savg.data.clip_format import DEFAULT_SAMPLE_RATE, LABEL_RATE, num_samples
from savg.data.stereo import azimuth_to_x, estimate_azimuth, focal_length_px, mid_side_gains, x_to_azimuth


def test_pinhole_mapping():
    assert abs(focal_length_px() - 107.4) < 0.05  # 100-degree field of view on a 256-wide picture
    assert azimuth_to_x(0.0) == 128
    assert azimuth_to_x(np.radians(50)) < 0.5 and azimuth_to_x(np.radians(-50)) > 255.5  # edges of the view
    x = np.linspace(-50, 300, 15)
    assert np.allclose(azimuth_to_x(x_to_azimuth(x)), x)
    assert np.allclose(azimuth_to_x(x_to_azimuth(x, fov_deg=70), fov_deg=70), x)


def test_mid_side_gains():
    g = mid_side_gains(np.radians([90.0, 0.0, -30.0]))
    assert np.allclose(g.sum(axis=0), 1)
    assert np.allclose(g[:, 0], [1, 0]) and np.allclose(g[:, 1], [0.5, 0.5]) and np.allclose(g[:, 2], [0.25, 0.75])


def test_estimate_azimuth_recovers_a_panned_source():
    sr = DEFAULT_SAMPLE_RATE
    n = num_samples(sr)
    rng = np.random.default_rng(0)
    truth = np.radians(np.linspace(-45, 45, n // (sr // LABEL_RATE)))  # one azimuth per 10 Hz frame
    source = rng.normal(size=n).astype(np.float32)
    per_sample = np.repeat(truth, sr // LABEL_RATE)
    audio = mid_side_gains(per_sample) * source
    audio += 0.001 * rng.normal(size=audio.shape)  # a little independent noise
    est, energy = estimate_azimuth(audio.astype(np.float32), sr)
    assert est.shape == truth.shape and (energy > 0).all()
    inner = slice(1, -1)  # frames whose analysis windows do not straddle a change at the clip edges
    assert np.degrees(np.abs(est[inner] - truth[inner])).max() < 4.0
    silent, _ = estimate_azimuth(np.zeros((2, n), np.float32), sr)
    assert np.isnan(silent).all()
