"""report.html: the metric table, Spatial / Temporal AV-Align, the memorisation check, plots of feature statistics
(inline SVG) and a grid of sample frames with audio players (PNG and WAV embedded as data URIs). One self-contained
file, no plotting library."""
import base64
import html
from pathlib import Path

import numpy as np

from savg.data.clip_format import NUM_FRAMES
from savg.data.clip_io import ClipError, read_clip
from savg.data.media import png_bytes, wav_bytes

COLORS = {"generated": "#d62728", "reference": "#1f77b4"}
SHOWN_FRAMES = (0, 5, 10, 15, NUM_FRAMES - 1)  # native frame indices in the sample grid
REPORT_RATE = 16_000  # Hz, audio players
MAX_EMBED_BYTES = 4_000_000  # mp4 files up to this size are embedded as playable videos


def _uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _svg(series: dict, title: str, xlabel: str, ylabel: str, scatter: bool, w: int = 360, h: int = 260) -> str:
    """A small chart: series {label: (x [N], y [N])} as points (scatter) or lines."""
    pad = 42
    xs = np.concatenate([np.asarray(x, float) for x, _ in series.values()])
    ys = np.concatenate([np.asarray(y, float) for _, y in series.values()])
    x0, x1 = float(xs.min()), float(xs.max()) or 1.0
    y0, y1 = float(ys.min()), float(ys.max())
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    sx = lambda v: pad + (v - x0) / (x1 - x0) * (w - 2 * pad)
    sy = lambda v: h - pad - (v - y0) / (y1 - y0) * (h - 2 * pad)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-size="11" font-family="sans-serif">',
             f'<rect x="{pad}" y="{pad}" width="{w - 2 * pad}" height="{h - 2 * pad}" fill="none" stroke="#999"/>',
             f'<text x="{w / 2}" y="16" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>',
             f'<text x="{w / 2}" y="{h - 8}" text-anchor="middle">{html.escape(xlabel)}</text>',
             f'<text x="12" y="{h / 2}" text-anchor="middle" transform="rotate(-90 12 {h / 2})">{html.escape(ylabel)}</text>',
             f'<text x="{pad}" y="{h - pad + 13}">{x0:.3g}</text><text x="{w - pad}" y="{h - pad + 13}" text-anchor="end">{x1:.3g}</text>',
             f'<text x="{pad - 3}" y="{h - pad}" text-anchor="end">{y0:.3g}</text><text x="{pad - 3}" y="{pad + 8}" text-anchor="end">{y1:.3g}</text>']
    for k, (label, (x, y)) in enumerate(series.items()):
        c = COLORS.get(label, "#555")
        if scatter:
            parts += [f'<circle cx="{sx(a):.1f}" cy="{sy(b):.1f}" r="2.5" fill="{c}" fill-opacity="0.6"/>' for a, b in zip(x, y)]
        else:
            pts = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(x, y))
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="1.5"/>')
        parts.append(f'<text x="{w - pad - 4}" y="{pad + 14 + 13 * k}" text-anchor="end" fill="{c}">{html.escape(label)}</text>')
    return "".join(parts) + "</svg>"


def feature_plots(name: str, gen: np.ndarray, ref: np.ndarray) -> str:
    """PCA scatter (axes fitted on the reference) and covariance eigenvalue spectra of features [N, D]."""
    g, r = np.asarray(gen, np.float64), np.asarray(ref, np.float64)
    mu = r.mean(0)
    _, _, vt = np.linalg.svd(r - mu, full_matrices=False)
    pg, pr = (g - mu) @ vt[:2].T, (r - mu) @ vt[:2].T
    scatter = _svg({"reference": (pr[:, 0], pr[:, 1]), "generated": (pg[:, 0], pg[:, 1])},
                   f"{name}: PCA of the reference", "PC 1", "PC 2", scatter=True)
    spectra = {}
    for label, x in (("reference", r), ("generated", g)):
        ev = np.sort(np.linalg.eigvalsh(np.cov(x, rowvar=False)))[::-1]
        ev = ev[ev > max(ev[0], 1e-300) * 1e-9]  # the numerical rank
        spectra[label] = (np.arange(1, len(ev) + 1), np.log10(ev))
    spectrum = _svg(spectra, f"{name}: covariance spectrum", "component", "log10 eigenvalue", scatter=False)
    return scatter + spectrum


def _downscale(frame: np.ndarray, f: int = 2) -> np.ndarray:
    h, w, c = frame.shape
    return frame[:h // f * f, :w // f * f].reshape(h // f, f, w // f, f, c).mean((1, 3)).astype(np.uint8)


def sample_rows(paths, windows, n: int) -> str:
    """HTML rows for the first `n` distinct files in window order: the video (playable, embedded when the file is
    at most MAX_EMBED_BYTES), frames and an audio player."""
    rows, seen = [], []
    for w in windows:
        if w.file not in seen:
            seen.append(w.file)
        if len(seen) == n:
            break
    for i in seen:
        try:
            clip = read_clip(paths[i], sample_rate=REPORT_RATE)
        except ClipError as e:  # changed since it was scanned
            rows.append(f"<tr><td>{html.escape(str(e))}</td></tr>")
            continue
        imgs = "".join(f'<img src="{_uri("image/png", png_bytes(_downscale(clip.video[k])))}" title="frame {k}">'
                       for k in SHOWN_FRAMES)
        audio = f'<audio controls src="{_uri("audio/wav", wav_bytes(clip.audio, REPORT_RATE))}"></audio>'
        size = paths[i].stat().st_size
        video = (f'<video controls width="256" height="256" src="{_uri("video/mp4", paths[i].read_bytes())}"></video>'
                 if paths[i].suffix.lower() == ".mp4" and size <= MAX_EMBED_BYTES else "")
        rows.append(f"<tr><td class=name>{html.escape(paths[i].name)}</td><td>{video}</td><td>{imgs}</td><td>{audio}</td></tr>")
    return "".join(rows)


def _score(value) -> str:
    return "n/a (no active sound found)" if value is None else f"{value:.4f}"


def spatial_section(spatial: dict, beside: list = None) -> str:
    """HTML for Spatial AV-Align: score, TP/FN, models, and the overlay strips written under spatial/overlays/.
    beside: other rows ({"row", "spatial_av_align", "tp", "fn", "num_clips"}, metrics.json "beside") tabled with
    this one (the ground truth, controls), scored with the same SELD and detector."""
    if not spatial:
        return ""
    overlays = "".join(f'<p><code>{html.escape(name)}</code><br><img class="strip" src="spatial/overlays/{html.escape(name)}"></p>'
                       for name in spatial.get("overlays", []))
    table = ""
    if beside:
        rows = [{"row": "this row", **spatial}, *beside]
        table = ("<table><tr><th>row</th><th>Spatial AV-Align</th><th>TP</th><th>FN</th><th>clips</th></tr>" + "".join(
            f"<tr><td>{html.escape(str(r['row']))}</td><td>{_score(r['spatial_av_align'])}</td><td>{r['tp']}</td>"
            f"<td>{r['fn']}</td><td>{r['num_clips']}</td></tr>" for r in rows) + "</table>")
    ci = spatial.get("spatial_av_align_ci")
    ci = f", 95% interval over clips [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
    return (f"<h2>Spatial AV-Align</h2><p><b>{_score(spatial['spatial_av_align'])}</b> ({spatial['tp']} TP, {spatial['fn']} FN "
            f"over {spatial['num_clips']} clips{ci}); SELD {html.escape(spatial['seld'])}, detector "
            f"{html.escape(spatial['detector'])}. Overlays: SELD intervals x &plusmn; 40 px (red speech, blue instrument) "
            f"and person boxes (green) on frames 0, 5, 10, 15, 19.</p>{table}{overlays}")


def _histogram(series: dict, title: str, xlabel: str, bins: int = 12) -> str:
    """Step histograms of {label: values [N]} on shared bins ("" when there are no values)."""
    values = {k: np.asarray(v, float) for k, v in series.items() if v is not None and len(v)}
    if not values:
        return ""
    allv = np.concatenate(list(values.values()))
    lo, hi = float(allv.min()), float(allv.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    steps = {}
    for label, v in values.items():
        counts, _ = np.histogram(v, edges)
        x = np.concatenate([[edges[0]], np.repeat(edges[1:-1], 2), [edges[-1]]])
        steps[label] = (np.concatenate([[edges[0]], x, [edges[-1]]]), np.concatenate([[0], np.repeat(counts, 2), [0]]))
    return _svg(steps, title, xlabel, "clips", scatter=False)


def _num(v, spec: str = ".4f") -> str:
    return "-" if v is None else f"{v:{spec}}"


def temporal_section(temporal: dict, beside: list = None) -> str:
    """HTML for Temporal AV-Align: the generated clips' score, the reference's (the files of the scored windows),
    other rows' beside it (metrics.json "beside" entries with a "temporal_av_align") and per-clip histograms."""
    if not temporal:
        return ""
    gen, ref = temporal.get("generated"), temporal.get("reference")

    def line(name, t):
        return (f"<tr><td>{html.escape(name)}</td><td>{_num(t['temporal_av_align'])}</td><td>{t['num_clips']}</td>"
                f"<td>{t['matched']}</td><td>{t['onsets']}</td><td>{t['peaks']}</td><td>{_num(t['pooled'])}</td>"
                f"<td>{t['num_above_one']}</td><td>{t['num_undefined']}</td></tr>")
    rows = line("this row", gen) + (line("reference (files of the scored windows)", ref) if ref else "")
    rows += "".join(f"<tr><td>{html.escape(str(r['row']))}</td><td>{_num(r.get('temporal_av_align'))}</td>"
                    '<td colspan="7"></td></tr>' for r in (beside or []) if r.get("temporal_av_align") is not None)
    per_clip = {label: [c["score"] for c in t["clips"] if c["score"] is not None]
                for label, t in (("generated", gen), ("reference", ref)) if t}
    return ("<h2>Temporal AV-Align</h2><p>Per clip |I| / (|A| + |V| - |I|): A = audio onsets (librosa 0.10.0 "
            "onset_detect, re-implemented), V = peaks of the mean Farneback optical-flow magnitude, I = onsets with a "
            "peak strictly within one frame (0.25 s); the score is the mean over clips, as SAVGBench's "
            "av_align_metric.py (published: ground truth 0.89, joint baseline 0.72). Onsets are counted, not pairs, so "
            "a clip can score above 1; clips with neither onsets nor peaks are undefined and left out.</p>"
            "<table><tr><th>row</th><th>Temporal AV-Align</th><th>clips</th><th>matched onsets</th><th>onsets</th>"
            f"<th>flow peaks</th><th>pooled</th><th>clips above 1</th><th>undefined</th></tr>{rows}</table>"
            f"<div>{_histogram(per_clip, 'Temporal AV-Align per clip', 'score')}</div>")


def memorisation_section(memo: dict, shown: int = 5) -> str:
    """HTML for the memorisation check: nearest-training-clip distance statistics of the generated and the eval
    clips, their histograms, and the `shown` generated clips nearest to a training clip."""
    if not memo:
        return ""
    rows = "".join(f"<tr><td>{label}</td>" + "".join(f"<td>{_num(memo[side][k], '.4g')}</td>"
                                                    for k in ("min", "q1", "median", "q3", "max")) +
                   f"<td>{memo[side]['n']}</td></tr>"
                   for side, label in (("generated", "generated"), ("eval", "eval (reference) clips")))
    closest = sorted(memo["clips"]["generated"], key=lambda c: c["distance"])[:shown]
    items = "".join(f"<li><code>{html.escape(Path(c['path']).name)}</code> &rarr; <code>"
                    f"{html.escape(Path(c['nearest']).name)}</code>: {c['distance']:.4g}</li>" for c in closest)
    hist = _histogram({"generated": [c["distance"] for c in memo["clips"]["generated"]],
                       "reference": [c["distance"] for c in memo["clips"]["eval"]]},
                      "distance to the nearest training clip", "distance")
    ratio = memo.get("ratio")
    return (f"<h2>Memorisation check</h2><p>Distance of each clip to its nearest training clip ({memo['num_train']} "
            f"training clips of {memo['num_train_files']}, spread over <code>{html.escape(str(memo['train']))}</code>); "
            f"features: {html.escape(memo['feature'])}. A generator that copies its training set has generated "
            f"distances well below the eval clips' (median ratio generated / eval: <b>{_num(ratio, '.3f')}</b>).</p>"
            "<table><tr><th>clips</th><th>min</th><th>25%</th><th>median</th><th>75%</th><th>max</th><th>n</th></tr>"
            f"{rows}</table><div>{hist}</div><p>Generated clips nearest to a training clip:</p><ul>{items}</ul>")


def file_items(metrics: dict, keys: tuple) -> str:
    """HTML <li> items, one per file of the lists metrics[key][side] (savg.eval.evaluate.FILE_LISTS) for key in
    `keys`: key, side, path and reason."""
    return "".join(f"<li>{key} ({side}): {html.escape(i['path'])} ({html.escape(i['reason'])})</li>"
                   for key in keys for side, found in metrics[key].items() for i in found)


def files_section(metrics: dict) -> str:
    """HTML naming the files scoring ignored (not .mp4) or read with a conversion; "" when there are none."""
    items = file_items(metrics, ("ignored", "converted"))
    return f"<h2>Files ignored / converted</h2><ul>{items}</ul>" if items else ""


def write_report(path, metrics: dict, features: dict, gen_paths, ref_paths, gen_windows, ref_windows, n_samples: int = 4):
    """Write the report. features: {"video": (gen [N, D], ref [M, D]), "audio": (...)}, the kinds scored (either may
    be absent: its plots are left out)."""
    rows = "".join(
        f"<tr><td>{html.escape(m['name'])}</td><td>{m['value']:.4g}</td><td>{html.escape(str(m['backend']))}</td>"
        f"<td>{m['protocol']}</td><td>{m['num_generated']}</td><td>{m['num_reference']}</td></tr>"
        for m in metrics["metrics"]) or '<tr><td colspan="6">none computed for this row</td></tr>'
    names = {"video": "I3D logits", "audio": metrics["fad_metric_name"] + " embeddings"}
    plots = "".join(feature_plots(names[kind], *features[kind]) for kind in ("video", "audio") if kind in features)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>savg evaluation</title><style>
body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:4px 8px}}
td.name{{font-family:monospace;font-size:12px}} img{{width:128px;height:128px;margin-right:2px}} img.strip{{width:640px;height:128px}} svg{{margin:6px}}</style></head><body>
<h1>FVD / KVD / FAD</h1>
<p>generated: <code>{html.escape(metrics['generated_dir'])}</code> ({metrics['num_generated_files']} readable files)<br>
reference: <code>{html.escape(metrics['reference_dir'])}</code> ({metrics['num_reference_files']} readable files)<br>
protocol: <b>{metrics['protocol']}</b>; I3D weights: {html.escape(metrics['i3d_weights'])}; FAD backend: <b>{metrics['fad_backend']}</b>
(reported as {html.escape(metrics['fad_metric_name'])}, scale {metrics['fad_scale']:g})</p>
<table><tr><th>metric</th><th>value</th><th>backend</th><th>protocol</th><th>generated</th><th>reference</th></tr>{rows}</table>
{spatial_section(metrics.get("spatial"), metrics.get("beside"))}
{temporal_section(metrics.get("temporal"), metrics.get("beside"))}
{memorisation_section(metrics.get("memorisation"))}
<h2>Skipped files</h2><ul>{file_items(metrics, ("skipped",)) or '<li>none</li>'}</ul>
{files_section(metrics)}
<h2>Feature statistics</h2><div>{plots}</div>
<h2>Samples: generated</h2><table>{sample_rows(gen_paths, gen_windows, n_samples)}</table>
<h2>Samples: reference</h2><table>{sample_rows(ref_paths, ref_windows, n_samples)}</table>
</body></html>"""
    with open(path, "w") as f:
        f.write(page)
