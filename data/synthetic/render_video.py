"""Render the 20 video pictures of a scene: a lit room in perspective, people and instruments, and their boxes.

`render_video(scene)` -> (pictures uint8 [20, 144, 256, 3], boxes). Everything is a pure function of the scene.

How it draws: the static room (walls, floor, ceiling, decorations, light) is ray-cast once per clip at 2x
supersampling and averaged down. Each frame then copies it, adds soft floor shadows and paints the entities far
to near (painter's algorithm) with antialiased signed-distance primitives (ellipses, tapered capsules, rounded
boxes, convex polygons), each evaluated only inside its own bounding box. Last come a slight blur, a vignette
and sensor noise. Coordinates of primitives are picture pixels (x right, y down); the scene is in metres.
"""
import math

import numpy as np

from ..clip_format import NUM_FRAMES, FPS, PICTURE_HEIGHT, PICTURE_WIDTH
from .scene import INSTRUMENT_SOUND_HEIGHT_M, MOUTH_HEIGHT, project

SUPERSAMPLE = 2  # background supersampling factor
BACK, FLOOR, CEILING, LEFT, RIGHT = range(5)  # room surfaces


# ---- canvas and antialiased primitives -----------------------------------------------------------------------
def _sd_ellipse(X, Y, cx, cy, rx, ry, cos=1.0, sin=0.0, bumps=0, bump_amp=0.0):
    """Approximate signed distance (pixels) to an ellipse rotated by (cos, sin); optional wavy outline. Also u/rx."""
    u = (X - cx) * cos + (Y - cy) * sin
    v = (Y - cy) * cos - (X - cx) * sin
    k2 = (u / rx) ** 2 + (v / ry) ** 2
    if bumps:
        k2 = k2 / (1.0 + bump_amp * np.sin(bumps * np.arctan2(v, u))) ** 2
    grad = 2.0 * np.sqrt((u / rx ** 2) ** 2 + (v / ry ** 2) ** 2) + 1e-6
    return (k2 - 1.0) / grad, u / rx


class Canvas:
    """A float32 RGB image [h, w, 3] (values 0..1) that antialiased shapes are filled into.

    Shape coordinates are picture pixels; the array may be supersampled `ss` times. `light_side` (-1..1) puts
    the highlight of shaded shapes on the left or right. While an entity is begun (`begin`), the coverage of
    what is filled is accumulated into its mask [h, w] and `owner` [h, w] records who was painted last.
    `glow` [h, w] (optional) records emissive coverage (window glass, lamp shades).
    """

    def __init__(self, image, ss=1, glow=None):
        self.image, self.ss, self.glow = image, ss, glow
        h, w = image.shape[:2]
        self.xs = ((np.arange(w) + 0.5) / ss).astype(np.float32)[None, :]
        self.ys = ((np.arange(h) + 0.5) / ss).astype(np.float32)[:, None]
        self.light_side = 0.0
        self.mask, self.owner, self.ident = None, None, -1

    def begin(self, mask, owner, ident):
        """Start accumulating coverage into `mask` [h, w] and ownership `ident` into `owner` [h, w]; None stops."""
        self.mask, self.owner, self.ident = mask, owner, ident

    def shape(self, bounds, sdf, colour, shade=0.0, opacity=1.0, soft=1.0, glow=None):
        """Fill where sdf(X, Y) -> (distance px, nx) < 0, inside bounds (x0, y0, x1, y1) in picture pixels.

        colour: RGB (3,) or callable(X, Y) -> [h, w, 3]; shade: strength of the cylinder-like shading across nx
        (-1..1 from one side to the other); soft: edge width in canvas pixels; opacity: 0..1.
        """
        h, w = self.image.shape[:2]
        ss = self.ss
        x0, y0, x1, y1 = (float(b) * ss for b in bounds)
        if not (x1 > 0 and y1 > 0 and x0 < w and y0 < h):
            return
        c0, c1 = max(math.floor(x0) - 1, 0), min(math.ceil(x1) + 1, w)
        r0, r1 = max(math.floor(y0) - 1, 0), min(math.ceil(y1) + 1, h)
        if c0 >= c1 or r0 >= r1:
            return
        X, Y = self.xs[:, c0:c1], self.ys[r0:r1]
        d, nx = sdf(X, Y)
        a = np.clip(0.5 - d * (ss / soft), 0.0, 1.0)
        if opacity != 1.0:
            a = a * opacity
        col = colour(X, Y) if callable(colour) else np.asarray(colour, dtype=np.float32)
        if shade and nx is not None:
            n = np.clip(nx, -1.0, 1.0)
            col = col * (1.0 + shade * (0.3 * self.light_side * n - 0.3 * n * n) + 0.08 * shade)[..., None]
        region = self.image[r0:r1, c0:c1]
        region += (col - region) * a[..., None]
        if self.glow is not None and glow is not None:
            g = self.glow[r0:r1, c0:c1]
            g += (glow - g) * a
        if self.mask is not None:
            m = self.mask[r0:r1, c0:c1]
            np.maximum(m, a, out=m)
            self.owner[r0:r1, c0:c1][a > 0.5] = self.ident

    def ellipse(self, cx, cy, rx, ry, colour, angle=0.0, bumps=0, bump_amp=0.0, **kw):
        """Ellipse centred (cx, cy) with radii (rx, ry) px, rotated by `angle` radians; wavy if bumps > 0."""
        rx, ry = max(rx, 0.3), max(ry, 0.3)
        c, s = math.cos(angle), math.sin(angle)
        ex = math.hypot(rx * c, ry * s) * (1 + bump_amp)
        ey = math.hypot(rx * s, ry * c) * (1 + bump_amp)
        self.shape((cx - ex, cy - ey, cx + ex, cy + ey),
                   lambda X, Y: _sd_ellipse(X, Y, cx, cy, rx, ry, c, s, bumps, bump_amp), colour, **kw)

    def capsule(self, ax, ay, bx, by, ra, rb, colour, **kw):
        """Tapered capsule from (ax, ay) with radius ra to (bx, by) with radius rb, pixels (limbs, tubes, lines)."""
        ra, rb = max(ra, 0.3), max(rb, 0.3)
        vx, vy = bx - ax, by - ay
        l2 = max(vx * vx + vy * vy, 1e-9)
        length = math.sqrt(l2)
        nx_, ny_ = (vy / length, -vx / length) if vy >= 0 else (-vy / length, vx / length)

        def sdf(X, Y):
            px, py = X - ax, Y - ay
            t = np.clip((px * vx + py * vy) / l2, 0.0, 1.0)
            dx, dy = px - vx * t, py - vy * t
            r = ra + (rb - ra) * t
            return np.sqrt(dx * dx + dy * dy) - r, (dx * nx_ + dy * ny_) / r

        r = max(ra, rb)
        self.shape((min(ax, bx) - r, min(ay, by) - r, max(ax, bx) + r, max(ay, by) + r), sdf, colour, **kw)

    def box(self, cx, cy, hw, hh, colour, angle=0.0, radius=0.0, taper=1.0, **kw):
        """Rounded box centred (cx, cy), half sizes (hw, hh) px, rotated; the bottom half width is hw * taper."""
        c, s = math.cos(angle), math.sin(angle)
        radius = min(radius, hw, hh, hw * taper)

        def sdf(X, Y):
            u = (X - cx) * c + (Y - cy) * s
            v = (Y - cy) * c - (X - cx) * s
            half = hw * (1.0 + (taper - 1.0) * np.clip((v + hh) / (2 * hh), 0, 1)) if taper != 1.0 else hw
            qx = np.abs(u) - (half - radius)
            qy = np.abs(v) - (hh - radius)
            out = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
            return out + np.minimum(np.maximum(qx, qy), 0) - radius, u / half

        ext = math.hypot(hw * max(1.0, taper), hh)
        self.shape((cx - ext, cy - ext, cx + ext, cy + ext), sdf, colour, **kw)

    def polygon(self, pts, colour, **kw):
        """Convex polygon with vertices pts [(x, y), ...] in pixels."""
        p = np.asarray(pts, dtype=np.float64)
        centre = p.mean(axis=0)
        edges = []
        for a, b in zip(p, np.roll(p, -1, axis=0)):
            e = b - a
            n = math.hypot(*e)
            if n < 1e-9:
                continue
            normal = np.array([e[1], -e[0]]) / n
            if np.dot(centre - a, normal) > 0:
                normal = -normal
            edges.append((a, normal))
        if len(edges) < 3:
            return
        half = max(p[:, 0].max() - p[:, 0].min(), 1e-6) / 2

        def sdf(X, Y):
            d = None
            for a, n in edges:
                di = (X - a[0]) * n[0] + (Y - a[1]) * n[1]
                d = di if d is None else np.maximum(d, di)
            return d, (X - centre[0]) / half

        self.shape((p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()), sdf, colour, **kw)


# ---- procedural texture helpers (metres on a surface) ----------------------------------------------------------
class _Tex:
    """Random tables for one clip's textures: `noise` and `cell` [64, 64] uniform 0..1."""

    def __init__(self, seed):
        rng = np.random.default_rng(seed)
        self.noise = rng.random((64, 64)).astype(np.float32)
        self.cell = rng.random((64, 64)).astype(np.float32)
        self.rng = rng


def _value_noise(table, x, y):
    """Smooth value noise 0..1 at lattice coordinates (x, y) (arrays) from a wrapping [n, n] table, n a power of 2."""
    n = table.shape[0]
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    i, j = x0.astype(np.int32) & (n - 1), (y0.astype(np.int32) & (n - 1)) * n
    i1, j1 = (i + 1) & (n - 1), (j + n) & (n * n - 1)
    flat = table.ravel()
    a, b, c, d = flat.take(j + i), flat.take(j + i1), flat.take(j1 + i), flat.take(j1 + i1)
    return a + (b - a) * fx + (c - a) * fy + (a - b - c + d) * fx * fy


def _fbm(table, x, y, octaves=3):
    """Fractal noise 0..1: `octaves` octaves of value noise, each twice as fine and half as strong."""
    total, amp, norm = 0.0, 1.0, 0.0
    for o in range(octaves):
        total = total + amp * _value_noise(table, x * 2 ** o + 17 * o, y * 2 ** o + 5 * o)
        norm += amp
        amp *= 0.5
    return total / norm


def _fade(fw, period):
    """Amplitude 0..1 for a detail of `period` metres seen with pixel footprint fw (metres): fades when unresolved."""
    return np.clip(1.0 - 1.5 * fw / period, 0.0, 1.0)


def _lines(c, period, width, fw):
    """Coverage 0..1 of lines `width` metres wide every `period` metres along coordinate c, footprint fw."""
    d = np.abs((c / period + 0.5) % 1.0 - 0.5) * period
    a = np.clip((width / 2 - d) / np.maximum(fw, 1e-6) + 0.5, 0.0, 1.0)
    blend = np.clip(2 * fw / period - 0.5, 0.0, 1.0)
    return a * (1 - blend) + min(width / period, 1.0) * blend


def _cells(tex, a, b):
    """Per-cell random 0..1 for integer cell indices a, b (arrays)."""
    return tex.cell[b.astype(np.int64) % 64, a.astype(np.int64) % 64]


def _mix(c1, c2, t):
    """Blend colours c1 -> c2 by t (scalar or [N]); returns float32 [..., 3]."""
    c1, c2 = np.asarray(c1, np.float32), np.asarray(c2, np.float32)
    t = np.asarray(t, np.float32)[..., None] if np.ndim(t) else np.float32(t)
    return c1 + (c2 - c1) * t


def _wall_texture(style, s, y, fw, base, trim, tex, ceiling_m):
    """Wall colour [N, 3] at wall coordinates s (along the wall) and y (up), metres; fw footprint [N] metres."""
    base = np.asarray(base, np.float32)
    lo = _fbm(tex.noise, s / 0.8, y / 0.8) - 0.5
    hi = (_value_noise(tex.noise, s / 0.012 + 11, y / 0.012 + 7) - 0.5) * _fade(fw, 0.012)
    if style == "brick":
        h, length = 0.076, 0.23
        row = np.floor(y / h)
        off = (row % 2) * 0.5 * length
        tone = 0.78 + 0.34 * _cells(tex, np.floor((s + off) / length), row)
        brick = _mix(base, (0.62, 0.30, 0.22), 0.45) * tone[:, None]
        brick = brick * (1 + 0.18 * hi + 0.1 * lo)[:, None]
        mortar = np.maximum(_lines(y, h, 0.012, fw), _lines(s + off, length, 0.012, fw) * _fade(fw, 0.05))
        col = _mix(brick, (0.72, 0.70, 0.66), mortar)
    elif style == "wood":
        w = 0.16
        col_i = np.floor(s / w)
        wood = _mix(base, (0.55, 0.36, 0.20), 0.55) * (0.8 + 0.3 * _cells(tex, col_i, col_i * 0 + 3))[:, None]
        grain = (_value_noise(tex.noise, s / 0.006, y / 0.35) - 0.5) * _fade(fw, 0.006)
        col = wood * (1 + 0.25 * grain + 0.08 * lo)[:, None] * (1 - 0.5 * _lines(s, w, 0.008, fw))[:, None]
    elif style == "wallpaper":
        stripe = np.sin(2 * np.pi * s / 0.12) > 0
        paper = base * np.where(stripe, 1.04, 0.95)[:, None]
        u = (s / 0.12) % 1.0 - 0.5
        v = (y / 0.16 + 0.5 * np.floor(s / 0.12)) % 1.0 - 0.5
        motif = np.clip((0.3 - (np.abs(u) + np.abs(v) * 0.75)) / np.maximum(fw / 0.12, 1e-3), 0, 1) * _fade(fw, 0.04)
        col = _mix(paper, _mix(base, trim, 0.6) * 0.8, 0.7 * motif)
        dado = y < 0.9
        col[dado] = (_mix(trim, (0.95, 0.95, 0.92), 0.6) * (1 - 0.35 * _lines(s, 0.5, 0.01, fw))[:, None])[dado]
        col *= (1 - 0.4 * _lines(y - 0.9, 100.0, 0.03, fw))[:, None]
        col *= (1 + 0.05 * lo)[:, None]
    elif style == "tiles":
        t = 0.15
        tone = 0.92 + 0.12 * _cells(tex, np.floor(s / t), np.floor(y / t))
        grout = np.maximum(_lines(s, t, 0.006, fw), _lines(y, t, 0.006, fw))
        col = _mix(base * tone[:, None], (0.85, 0.85, 0.82), grout)
    elif style == "concrete":
        grey = _mix(base, (0.6, 0.6, 0.6), 0.6)
        col = grey * (1 + 0.22 * lo + 0.15 * hi + 0.08 * (_fbm(tex.noise, s / 0.1, y / 0.1) - 0.5))[:, None]
        seams = np.maximum(_lines(s, 1.2, 0.01, fw), _lines(y, 0.6, 0.01, fw))
        hu, hv = (s % 0.3) - 0.15, (y % 0.3) - 0.15
        holes = np.clip((0.012 - np.sqrt(hu * hu + hv * hv)) / np.maximum(fw, 1e-4) + 0.5, 0, 1) * _fade(fw, 0.03)
        col = col * (1 - 0.35 * np.maximum(seams, holes))[:, None]
    else:  # plaster
        col = base * (1 + 0.12 * lo + 0.1 * hi)[:, None]
    skirting = y < 0.1
    col[skirting] = np.asarray(trim, np.float32) * 0.75
    col *= (1 - 0.5 * _lines(y - 0.1, 100.0, 0.01, fw))[:, None]
    top = y > ceiling_m - 0.06
    col[top] = _mix(trim, (1, 1, 1), 0.6) * 0.95
    return col


def _floor_texture(style, x, z, fwx, fwz, base, tex):
    """Floor colour [N, 3] at floor coordinates x (across) and z (depth), metres; footprints fwx, fwz [N]."""
    base = np.asarray(base, np.float32)
    fw = np.maximum(fwx, fwz)
    lo = _fbm(tex.noise, x / 1.5 + 31, z / 1.5) - 0.5
    if style == "wood":
        w, length = 0.14, 1.3
        col_i = np.floor(x / w)
        zz = z + _cells(tex, col_i, col_i * 0 + 7) * length
        tone = 0.78 + 0.36 * _cells(tex, col_i, np.floor(zz / length))
        grain = (_value_noise(tex.noise, x / 0.008 + 3, zz / 0.4) - 0.5) * _fade(fwx, 0.008)
        seams = np.maximum(_lines(x, w, 0.006, fwx), _lines(zz, length, 0.006, fwz) * _fade(fwx, 0.03))
        col = base * (tone * (1 + 0.3 * grain + 0.1 * lo) * (1 - 0.55 * seams))[:, None]
    elif style in ("tiles", "checker"):
        t = 0.5 if style == "tiles" else 0.42
        if style == "tiles":
            tone = 0.9 + 0.15 * _cells(tex, np.floor(x / t), np.floor(z / t))
            col = base * tone[:, None]
        else:
            sx = _square_wave(x, t, fwx)
            sz = _square_wave(z, t, fwz)
            other = np.float32(0.92) - base * 0.25 if base.mean() < 0.5 else base * 0.3
            col = _mix(base, other, 0.5 + 0.5 * sx * sz)
        grout = np.maximum(_lines(x, t, 0.008, fwx), _lines(z, t, 0.008, fwz))
        col = _mix(col * (1 + 0.06 * lo)[:, None], (0.7, 0.7, 0.68), grout * 0.8)
    else:  # carpet
        fuzz = (_value_noise(tex.noise, x / 0.01, z / 0.01) - 0.5) * _fade(fw, 0.01)
        mid = _fbm(tex.noise, x / 0.15, z / 0.15) - 0.5
        col = base * (1 + 0.25 * fuzz + 0.12 * mid + 0.1 * lo)[:, None]
    return col


def _ceiling_texture(scene, x, z, fwx, fwz, tex):
    """Ceiling colour [N, 3] at ceiling coordinates x, z (metres): plain, a grid of panels, or wooden beams."""
    col = _mix(scene.room.wall_rgb, (0.95, 0.94, 0.92), 0.75)
    col = col * (1 + 0.05 * (_fbm(tex.noise, x / 0.7, z / 0.7) - 0.5))[:, None]
    style = np.random.default_rng(scene.seed + 606).integers(3)
    if style == 1:
        grid = np.maximum(_lines(x, 0.6, 0.015, fwx), _lines(z, 0.6, 0.015, fwz))
        col = _mix(col, col * 0.75, grid)
    elif style == 2:
        beams = _lines(z, 1.2, 0.16, fwz)
        col = _mix(col, _mix(scene.room.trim_rgb, (0.4, 0.27, 0.15), 0.8), beams)
    return col


def _square_wave(c, period, fw):
    """Antialiased square wave -1/+1 of cells `period` metres wide along c (fades to 0 where unresolved)."""
    q = c / period
    parity = (np.floor(q) % 2) * 2 - 1
    edge = (0.5 - np.abs(q % 1.0 - 0.5)) * period
    return parity * np.clip(edge / np.maximum(fw, 1e-6), 0, 1) * _fade(fw, period)


# ---- lighting --------------------------------------------------------------------------------------------------
class _Light:
    """The room's main light: a lamp under the ceiling at picture position light_x, mid-depth; colour `tint` (3,)."""

    def __init__(self, scene, ceiling_m):
        room, cam = scene.room, scene.camera
        z = 0.55 * room.depth_m
        x = (room.light_x * PICTURE_WIDTH - PICTURE_WIDTH / 2) * z / cam.focal_px
        self.pos = np.array([np.clip(x, -0.4 * room.width_m, 0.4 * room.width_m), ceiling_m - 0.45, z])
        self.tint = (np.asarray(room.light_rgb, np.float32) * np.float32(room.brightness))
        self.radius = 0.45 * room.depth_m

    def irradiance(self, x, y, z, cos=0.7):
        """Light level (~0.5..1.3) at world points (metres), given the cosine of incidence (scalar or array)."""
        d2 = (x - self.pos[0]) ** 2 + (y - self.pos[1]) ** 2 + (z - self.pos[2]) ** 2
        return 0.72 + 0.75 * self.radius ** 2 / (self.radius ** 2 + d2) * (0.35 + 0.65 * cos)

    def side(self, x_m):
        """Which side of something at x_m is lit: -1 (left) .. 1 (right)."""
        return float(np.clip((self.pos[0] - x_m) / 1.5, -1, 1))


# ---- the static background -------------------------------------------------------------------------------------
def _ceiling_height(scene):
    """Ceiling height in metres (2.7..3.2), fixed by the scene seed."""
    return float(np.random.default_rng(scene.seed + 404).uniform(2.7, 3.2))


def _ray_hits(scene, ceiling_m, ss):
    """Cast one ray per canvas pixel into the room box: (surface id [h, w], X, Y, Z hit points [h, w] metres)."""
    cam, room = scene.camera, scene.room
    f = cam.focal_px
    h, w = PICTURE_HEIGHT * ss, PICTURE_WIDTH * ss
    dx = np.broadcast_to((((np.arange(w) + 0.5) / ss - PICTURE_WIDTH / 2) / f)[None, :], (h, w))
    dy = np.broadcast_to(((cam.horizon_row - (np.arange(h) + 0.5) / ss) / f)[:, None], (h, w))
    big = 1e6
    with np.errstate(divide="ignore"):
        ts = np.stack([
            np.full((h, w), room.depth_m),
            np.where(dy < -1e-9, cam.eye_height_m / -dy, big),
            np.where(dy > 1e-9, (ceiling_m - cam.eye_height_m) / dy, big),
            np.where(dx < -1e-9, room.width_m / 2 / -dx, big),
            np.where(dx > 1e-9, room.width_m / 2 / dx, big),
        ])
    surf = np.argmin(ts, axis=0)
    t = np.min(ts, axis=0)
    return surf, t * dx, cam.eye_height_m + t * dy, t


def _footprint(c):
    """Per-pixel change of coordinate array c [h, w] (metres per canvas pixel), capped at 1 m."""
    gy, gx = np.gradient(c)
    return np.minimum(np.abs(gx) + np.abs(gy), 1.0)


def render_background(scene):
    """The empty lit room for `scene`: float32 [144, 256, 3], values ~0..1. Deterministic from scene.seed."""
    ss = SUPERSAMPLE
    room, cam = scene.room, scene.camera
    tex = _Tex(scene.seed + 101)
    ceiling_m = _ceiling_height(scene)
    light = _Light(scene, ceiling_m)
    surf, X, Y, Z = _ray_hits(scene, ceiling_m, ss)
    h, w = surf.shape
    img = np.zeros((h, w, 3), np.float32)
    glow = np.zeros((h, w), np.float32)

    # back wall with its decorations, painted as a flat picture (the wall faces the camera)
    f = cam.focal_px
    xb = ((np.arange(w) + 0.5) / ss - PICTURE_WIDTH / 2) * room.depth_m / f
    yb = cam.eye_height_m + (cam.horizon_row - (np.arange(h) + 0.5) / ss) * room.depth_m / f
    rows, cols = np.flatnonzero((surf == BACK).any(axis=1)), np.flatnonzero((surf == BACK).any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1  # the back wall's rectangle
    XB, YB = np.meshgrid(xb[c0:c1], yb[r0:r1])
    fwb = np.full(XB.size, room.depth_m / f / ss)
    back = np.zeros((h, w, 3), np.float32)
    back[r0:r1, c0:c1] = _wall_texture(room.wall_style, XB.ravel(), YB.ravel(), fwb, room.wall_rgb, room.trim_rgb,
                                       tex, ceiling_m).reshape(r1 - r0, c1 - c0, 3)
    _paint_decorations(Canvas(back, ss, glow), scene, ceiling_m)
    sel = surf == BACK
    img[sel] = back[sel]
    glow[~sel] = 0.0

    fX, fY, fZ = _footprint(X), _footprint(Y), _footprint(Z)
    sel = surf == FLOOR
    img[sel] = _floor_texture(room.floor_style, X[sel], Z[sel], fX[sel], fZ[sel], room.floor_rgb, tex)
    sel = (surf == LEFT) | (surf == RIGHT)
    img[sel] = _wall_texture(room.wall_style, Z[sel] + 0.37, Y[sel], np.maximum(fZ[sel], fY[sel]),
                             room.wall_rgb, room.trim_rgb, tex, ceiling_m)
    _paint_side_walls(Canvas(img, ss, glow), scene, ceiling_m)
    sel = surf == CEILING
    img[sel] = _ceiling_texture(scene, X[sel], Z[sel], fX[sel], fZ[sel], tex)

    img = _light_room(img, glow, scene, light, surf, X, Y, Z, ceiling_m)
    _paint_ceiling_lamp(Canvas(img, ss), scene, light, ceiling_m)
    return img.reshape(PICTURE_HEIGHT, ss, PICTURE_WIDTH, ss, 3).mean(axis=(1, 3))


def _light_room(img, glow, scene, light, surf, X, Y, Z, ceiling_m):
    """Apply the light (falloff, incidence, corner darkening, floor sheen) to the room colours [h, w, 3]."""
    room = scene.room
    half_w = room.width_m / 2
    normals = np.array([[0, 0, -1], [0, 1, 0], [0, -1, 0], [1, 0, 0], [-1, 0, 0]], np.float32)[surf]
    lx, ly, lz = light.pos[0] - X, light.pos[1] - Y, light.pos[2] - Z
    dist = np.sqrt(lx * lx + ly * ly + lz * lz) + 1e-6
    cos = np.abs(normals[..., 0] * lx + normals[..., 1] * ly + normals[..., 2] * lz) / dist
    level = light.irradiance(X, Y, Z, cos)
    # ambient occlusion near the room's edges
    edge = np.minimum.reduce([np.where(surf == FLOOR, 9.0, np.minimum(Y, ceiling_m - Y)),
                              np.where((surf == LEFT) | (surf == RIGHT), 9.0, half_w - np.abs(X)),
                              np.where(surf == BACK, 9.0, room.depth_m - Z)])
    level = level * (1 - 0.28 * np.exp(-np.maximum(edge, 0) / 0.3))
    if room.floor_style != "carpet":  # a soft reflection of the lamp on a polished floor
        t = scene.camera.eye_height_m / (scene.camera.eye_height_m + light.pos[1])
        sheen = np.exp(-((X - light.pos[0] * t) / 0.8) ** 2 - ((Z - light.pos[2] * t) / 1.6) ** 2)
        level = level + 0.25 * sheen * (surf == FLOOR)
    lit = img * level[..., None] * light.tint
    emissive = img * np.float32(0.75 + 0.25 * room.brightness)
    return lit + (emissive - lit) * glow[..., None]


def _paint_ceiling_lamp(cv, scene, light, ceiling_m):
    """A pendant lamp at the light's position: cord, shade and a glowing bulb (picture pixels)."""
    cam = scene.camera
    x, y, z = light.pos
    cx, top, p = project(cam, x, ceiling_m, z)
    _, sy, _ = project(cam, x, y, z)
    trim = np.asarray(scene.room.trim_rgb, np.float32) * light.tint
    cv.capsule(cx, top, cx, sy, 0.01 * p, 0.01 * p, (0.1, 0.1, 0.1))
    cv.ellipse(cx, sy + 0.12 * p, 0.13 * p, 0.05 * p, np.minimum(light.tint * 1.1, 1.0), soft=2.0)
    cv.box(cx, sy + 0.06 * p, 0.09 * p, 0.07 * p, trim, taper=1.8, shade=1.0)


def _paint_decorations(cv, scene, ceiling_m):
    """Paint room.decorations on the back wall canvas (wall coordinates in metres -> picture pixels)."""
    room, cam = scene.room, scene.camera
    s = cam.focal_px / room.depth_m  # pixels per metre on the back wall

    def at(x, y):
        return PICTURE_WIDTH / 2 + x * s, cam.horizon_row + (cam.eye_height_m - y) * s

    rng = np.random.default_rng(scene.seed + 202)
    for kind, x_frac, size, rgb in room.decorations:
        x = (x_frac - 0.5) * room.width_m
        rgb = np.asarray(rgb, np.float32)
        trim = np.asarray(room.trim_rgb, np.float32)
        DECORATION_PAINTERS[kind](cv, at, s, x, size, rgb, trim, ceiling_m, rng)


def _window(cv, at, s, x, size, rgb, trim, ceiling_m, rng):
    """A window with a frame, mullions, sill and a sky / hills view."""
    w, bottom = 0.55 * size, 0.9
    top = min(bottom + 1.2 * size, ceiling_m - 0.2)
    cx, cy = at(x, (top + bottom) / 2)
    hw, hh = w * s, (top - bottom) / 2 * s
    frame = _mix(trim, (0.95, 0.95, 0.93), 0.6)
    cv.box(cx, cy, hw + 0.06 * s, hh + 0.06 * s, frame * 0.85)
    sky_top, sky_low = _mix((0.25, 0.45, 0.85), rgb, 0.2), np.array([0.85, 0.9, 0.95], np.float32)
    hill = _mix((0.25, 0.45, 0.2), rgb, 0.2)
    phase = rng.uniform(0, 6)

    def view(X, Y):
        v = np.clip((Y - (cy - hh)) / (2 * hh), 0, 1)
        col = _mix(sky_top, sky_low, v ** 0.7)
        ridge = 0.62 + 0.08 * np.sin((X - cx) / hw * 3 + phase) + 0.04 * np.sin((X - cx) / hw * 7)
        return _mix(col, hill * (1.2 - 0.5 * v)[..., None], np.clip((v - ridge) * 40, 0, 1))

    cv.box(cx, cy, hw, hh, view, glow=1.0)
    cv.box(cx, cy, 0.025 * s, hh, frame)
    cv.box(cx, cy - 0.15 * hh, hw, 0.02 * s, frame)
    cv.box(cx, cy + hh + 0.07 * s, hw + 0.1 * s, 0.03 * s, frame * 0.9)


def _door(cv, at, s, x, size, rgb, trim, ceiling_m, rng):
    """A panelled door standing on the floor, with frame and knob."""
    w, h = 0.45 * min(size, 1.1) + 0.1, min(2.05, ceiling_m - 0.3)
    cx, cy = at(x, h / 2)
    leaf = _mix(rgb, (0.5, 0.35, 0.22), 0.4)
    cv.box(cx, cy, (w + 0.07) * s, (h / 2 + 0.035) * s, _mix(trim, (0.9, 0.9, 0.88), 0.4))
    cv.box(cx, cy + 0.035 * s, w * s, h / 2 * s, leaf, shade=0.3)
    for py in (0.32, 0.75):
        px, pyy = at(x, py * h)
        cv.box(px, pyy, (w - 0.12) * s, 0.16 * h * s, leaf * 0.88)
        cv.box(px, pyy - 0.01 * s, (w - 0.14) * s, 0.16 * h * s - 0.02 * s, leaf * 1.05)
    kx, ky = at(x + w - 0.09, 0.95)
    cv.ellipse(kx, ky, 0.03 * s, 0.03 * s, (0.8, 0.7, 0.35), shade=1.0)


def _frame(cv, at, s, x, size, rgb, trim, ceiling_m, rng):
    """A framed painting: a small landscape or an abstract composition."""
    w, h = 0.35 * size, 0.26 * size
    cx, cy = at(x, min(1.6, ceiling_m - 0.4 - h))
    cv.box(cx + 0.02 * s, cy + 0.03 * s, (w + 0.05) * s, (h + 0.05) * s, (0, 0, 0), opacity=0.25, soft=3.0)
    cv.box(cx, cy, (w + 0.05) * s, (h + 0.05) * s, _mix(rgb, (0.15, 0.1, 0.05), 0.7), shade=0.5)
    cv.box(cx, cy, (w + 0.01) * s, (h + 0.01) * s, (0.92, 0.9, 0.85))
    top, bottom = rgb, _mix(rgb[::-1], (0.2, 0.3, 0.1), 0.5)
    cv.box(cx, cy, w * 0.85 * s, h * 0.85 * s, lambda X, Y: _mix(top, bottom, np.clip((Y - cy) / (h * s) + 0.5, 0, 1)))
    if rng.random() < 0.5:
        cv.ellipse(cx + 0.3 * w * s, cy - 0.3 * h * s, 0.15 * h * s, 0.15 * h * s, (0.95, 0.85, 0.4))
        cv.ellipse(cx - 0.2 * w * s, cy + 0.8 * h * s, 0.9 * w * s, 0.5 * h * s, _mix(bottom, (0, 0, 0), 0.3))
    else:
        for _ in range(3):
            cv.box(cx + rng.uniform(-0.5, 0.5) * w * s, cy + rng.uniform(-0.5, 0.5) * h * s,
                   rng.uniform(0.1, 0.3) * w * s, rng.uniform(0.1, 0.3) * h * s, rng.uniform(0.1, 0.95, 3))


def _shelf(cv, at, s, x, size, rgb, trim, ceiling_m, rng):
    """A wall shelf with brackets, books and a vase."""
    w, y = 0.5 * size, 1.35
    cx, cy = at(x, y)
    wood = _mix(trim, (0.5, 0.33, 0.2), 0.6)
    book_x = x - w + 0.03
    while book_x < x + w * 0.55:
        bw, bh = rng.uniform(0.02, 0.045), rng.uniform(0.16, 0.27)
        bx, by = at(book_x + bw, y + 0.02 + bh / 2)
        tilt = rng.uniform(-0.25, 0.0) if rng.random() < 0.15 else 0.0
        cv.box(bx, by, bw * s, bh / 2 * s, _mix(rng.uniform(0.1, 0.85, 3), rgb, 0.25), angle=tilt, shade=0.6)
        book_x += 2 * bw + 0.004
    vx, vy = at(x + w * 0.78, y + 0.1)
    cv.ellipse(vx, vy, 0.05 * s, 0.08 * s, _mix(rgb, (1, 1, 1), 0.3), shade=1.0)
    cv.box(cx, cy + 0.02 * s, w * s, 0.02 * s, wood, shade=0.3)
    cv.box(cx, cy + 0.025 * s, w * s, 0.02 * s, (0, 0, 0), opacity=0.2, soft=3.0)
    for sx in (-0.7, 0.7):
        bx, by = at(x + sx * w, y - 0.08)
        cv.box(bx, by, 0.012 * s, 0.07 * s, wood * 0.7)


def _plant(cv, at, s, x, size, rgb, trim, ceiling_m, rng):
    """A potted plant on the floor against the wall: a pot and a fan of leaves."""
    pot_h = 0.3 * size
    px, py = at(x, pot_h / 2)
    cv.ellipse(px, py + pot_h / 2 * s, 0.2 * size * s, 0.04 * s, (0, 0, 0), opacity=0.3, soft=3.0)
    base_green = _mix((0.15, 0.45, 0.15), rgb, 0.15)
    tx, ty = at(x, pot_h)
    for _ in range(11):
        ang = rng.uniform(-1.3, 1.3)
        length = rng.uniform(0.35, 0.7) * size
        ex, ey = tx + math.sin(ang) * length * s * 0.6, ty - math.cos(ang) * length * s * 0.6
        cv.ellipse(ex, ey, length * 0.55 * s, 0.06 * size * s, base_green * rng.uniform(0.6, 1.2),
                   angle=ang - math.pi / 2, shade=0.8)
    cv.box(px, py, 0.14 * size * s, pot_h / 2 * s, _mix(rgb, (0.7, 0.35, 0.2), 0.5), taper=0.75, shade=1.0)
    cv.box(tx, ty + 0.015 * s, 0.15 * size * s, 0.02 * s, _mix(rgb, (0.7, 0.35, 0.2), 0.5) * 0.8)


def _lamp(cv, at, s, x, size, rgb, trim, ceiling_m, rng):
    """A floor lamp: base, pole and a glowing shade with a halo on the wall."""
    h = min(1.25 + 0.3 * size, ceiling_m - 0.5)
    bx, by = at(x, 0.02)
    sx, sy = at(x, h)
    cv.ellipse(sx, sy, 0.5 * s, 0.45 * s, (1.0, 0.95, 0.8), opacity=0.25, soft=0.45 * s * 2)
    cv.capsule(bx, by, sx, sy, 0.012 * s, 0.012 * s, (0.15, 0.15, 0.15))
    cv.ellipse(bx, by, 0.12 * s, 0.025 * s, (0.1, 0.1, 0.1))
    shade = _mix(rgb, (1.0, 0.92, 0.75), 0.6)
    cv.box(sx, sy, 0.1 * size * s, 0.1 * size * s, shade, taper=1.6, glow=0.6)


def _curtain(cv, at, s, x, size, rgb, trim, ceiling_m, rng):
    """Two curtain panels with folds hanging from a rod."""
    top, bottom = ceiling_m - 0.15, 0.05
    w = 0.25 * size
    gap = 0.3 * size
    cloth = _mix(rgb, (0.6, 0.6, 0.6), 0.2)
    for side in (-1, 1):
        cx, cy = at(x + side * (gap + w), (top + bottom) / 2)

        def folds(X, Y, cx=cx):
            return cloth * (0.82 + 0.22 * np.sin((X - cx) / (0.04 * s)))[..., None]
        cv.box(cx, cy, w * s, (top - bottom) / 2 * s, folds, taper=1.25)
    rx0, ry = at(x - gap - 2 * w - 0.1, top + 0.02)
    rx1, _ = at(x + gap + 2 * w + 0.1, top + 0.02)
    cv.capsule(rx0, ry, rx1, ry, 0.015 * s, 0.015 * s, trim * 0.6)


def _paint_side_walls(cv, scene, ceiling_m):
    """A few windows, framed pictures, doors and radiators on the side walls, drawn as perspective quads."""
    room, cam = scene.room, scene.camera
    rng = np.random.default_rng(scene.seed + 505)
    trim = np.asarray(room.trim_rgb, np.float32)
    frame = _mix(trim, (0.95, 0.95, 0.93), 0.5)
    for side in (-1.0, 1.0):
        wall_x = side * (room.width_m / 2 - 0.005)
        z = max(wall_x * side * cam.focal_px / (PICTURE_WIDTH / 2), 1.0) + rng.uniform(0.2, 1.5)

        def quad(za, zb, ya, yb, wall_x=wall_x):
            return [tuple(float(v) for v in project(cam, wall_x, y, zz)[:2]) for zz, y in
                    ((za, ya), (zb, ya), (zb, yb), (za, yb))]
        while z < room.depth_m - 1.0 and rng.random() < 0.75:
            kind = rng.choice(("window", "frame", "door", "radiator"))
            length = {"window": 1.2, "frame": 0.7, "door": 0.95, "radiator": 0.9}[kind] * rng.uniform(0.8, 1.2)
            za, zb = z, min(z + length, room.depth_m - 0.3)
            if kind == "window":
                top = min(2.2, ceiling_m - 0.25)
                cv.polygon(quad(za - 0.06, zb + 0.06, 0.84, top + 0.06), frame * 0.85)
                cv.polygon(quad(za, zb, 0.9, top), _sky_colour(quad(za, zb, 0.9, top), rng), glow=1.0)
                cv.polygon(quad((za + zb) / 2 - 0.025, (za + zb) / 2 + 0.025, 0.9, top), frame)
            elif kind == "frame":
                y0 = rng.uniform(1.2, 1.5)
                moulding = _mix(rng.uniform(0, 1, 3), (0.1, 0.07, 0.04), 0.7)
                cv.polygon(quad(za - 0.05, zb + 0.05, y0 - 0.05, y0 + 0.55), moulding)
                cv.polygon(quad(za, zb, y0, y0 + 0.5), _mix(rng.uniform(0.1, 0.9, 3), (0.9, 0.85, 0.7), 0.3))
                cv.polygon(quad(za + 0.1 * length, zb - 0.1 * length, y0 + 0.08, y0 + 0.25), rng.uniform(0.1, 0.9, 3))
            elif kind == "door":
                leaf = _mix(rng.uniform(0.2, 0.9, 3), (0.5, 0.35, 0.22), 0.5)
                cv.polygon(quad(za - 0.07, zb + 0.07, 0.0, 2.1), frame)
                cv.polygon(quad(za, zb, 0.0, 2.03), leaf)
                for y0, y1 in ((0.2, 0.9), (1.1, 1.85)):
                    cv.polygon(quad(za + 0.12, zb - 0.12, y0, y1), leaf * 0.88)
                kx, ky, kp = project(cam, wall_x, 0.95, zb - 0.08)
                cv.ellipse(float(kx), float(ky), 0.02 * kp, 0.03 * kp, (0.8, 0.7, 0.35))
            else:
                metal = _mix(trim, (0.92, 0.92, 0.9), 0.7)
                cv.polygon(quad(za, zb, 0.15, 0.7), lambda X, Y, wx=wall_x, za=za: metal * (
                    0.8 + 0.2 * np.cos(2 * np.pi * (wx * cam.focal_px / np.where(np.abs(X - PICTURE_WIDTH / 2) < 1e-3,
                                                    1e-3, X - PICTURE_WIDTH / 2) - za) / 0.06))[..., None])
            z = zb + rng.uniform(0.4, 2.0)


def _sky_colour(pts, rng):
    """Colour function for a window quad `pts`: a sky gradient from top to bottom over its picture rows."""
    ys = [p[1] for p in pts]
    top, bottom = min(ys), max(ys)
    sky = _mix((0.3, 0.5, 0.9), rng.uniform(0.5, 1, 3), 0.2)

    def colour(X, Y):
        v = np.clip((Y - top) / max(bottom - top, 1e-3), 0, 1)
        return _mix(_mix(sky, (0.88, 0.92, 0.96), v ** 0.8), (0.3, 0.45, 0.25), np.clip((v - 0.75) * 8, 0, 1))
    return colour


DECORATION_PAINTERS = {"window": _window, "door": _door, "frame": _frame, "shelf": _shelf, "plant": _plant,
                       "lamp": _lamp, "curtain": _curtain}


# ---- entities ------------------------------------------------------------------------------------------------
class _Place:
    """Maps body-local metres (bx to the right, by up from the floor) at ground point (x_m, z_m) to picture pixels."""

    def __init__(self, camera, x_m, z_m):
        self.cx, self.fy, self.p = (float(v) for v in project(camera, x_m, 0.0, z_m))

    def __call__(self, bx, by):
        return self.cx + bx * self.p, self.fy - by * self.p

    def local(self, X, Y):
        """Inverse of __call__ for picture pixels (X, Y) -> body-local metres."""
        return (X - self.cx) / self.p, (self.fy - Y) / self.p


class _Style:
    """Per-entity random details that the scene does not fix (walk phase, sleeves, shoes, piano kind)."""

    def __init__(self, scene, index):
        rng = np.random.default_rng(scene.seed * 1009 + index + 13)
        e = scene.entities[index]
        self.phase = float(rng.uniform(0, 2 * np.pi))
        self.long_sleeves = bool(rng.random() < 0.55)
        self.shoes = np.asarray(((0.08, 0.07, 0.07), (0.3, 0.18, 0.1), (0.85, 0.85, 0.85))[rng.integers(3)], np.float32)
        self.upright = bool(rng.random() < 0.6)
        self.gesture_side = float(rng.choice((-1.0, 1.0)))
        step = np.hypot(np.diff(e.x_m, prepend=e.x_m[0]), np.diff(e.z_m, prepend=e.z_m[0]))
        self.walked = np.cumsum(step)  # metres walked by each frame
        self.vx = np.gradient(e.x_m) * FPS  # lateral speed, m/s
        self.plays = None  # index of the floor instrument this person plays


def _ik(shoulder, hand, l1, l2, bend):
    """Elbow and (reachable) hand for a two-segment arm, body metres.

    bend = +1 puts the elbow on the left of the shoulder->hand direction (turned +90 deg), -1 on the right.
    """
    s, h = np.asarray(shoulder, float), np.asarray(hand, float)
    v = h - s
    d = float(np.hypot(*v))
    u = v / max(d, 1e-9)
    d = min(max(d, abs(l1 - l2) + 1e-3), l1 + l2 - 1e-3)
    a = (l1 * l1 - l2 * l2 + d * d) / (2 * d)
    k = math.sqrt(max(l1 * l1 - a * a, 0.0))
    elbow = s + a * u + bend * k * np.array([-u[1], u[0]])
    return elbow, s + d * u


def _lit(rgb, light, level, factor=1.0):
    """An entity colour under the room light: float32 (3,)."""
    return np.asarray(rgb, np.float32) * light.tint * np.float32(level * factor)


def _draw_shadow(cv, camera, x, z, radius, light, strength=0.5):
    """A soft dark ellipse on the floor under (x, z), radius metres, pushed away from the light."""
    shift = -0.25 * light.side(x)
    cx, cy, p = project(camera, x + shift, 0.0, z)
    rx = radius * p
    ry = max(radius * p * camera.eye_height_m / z, 1.0)
    cv.ellipse(cx, cy, rx, ry, (0, 0, 0), opacity=strength, soft=max(0.6 * ry, 1.0))


def _draw_person(cv, scene, i, k, style, light, held, masks):
    """Paint person i at video frame k (with the instrument entity `held` it carries, or None)."""
    e, cam = scene.entities[i], scene.camera
    look, H, b = e.person, e.person.height_m, e.person.build
    P = _Place(cam, e.x_m[k], e.z_m[k])
    if P.cx + 0.6 * H * P.p < 0 or P.cx - 0.6 * H * P.p > PICTURE_WIDTH or P.fy - 1.1 * H * P.p > PICTURE_HEIGHT:
        return
    level = light.irradiance(e.x_m[k], 1.2, e.z_m[k])
    cv.light_side = light.side(e.x_m[k])
    skin, hair = _lit(look.skin_rgb, light, level), _lit(look.hair_rgb, light, level)
    shirt, trousers = _lit(look.shirt_rgb, light, level), _lit(look.trousers_rgb, light, level)
    shoes = style.shoes * light.tint * np.float32(level)
    walk = min(abs(style.vx[k]) / 0.9, 1.0)
    phase = style.phase + style.walked[k] / 0.7 * np.pi
    swing = 0.45 * walk * math.sin(phase) + 0.03 * e.motion[k] * math.sin(1.7 * k + style.phase)
    direction = float(np.sign(style.vx[k])) if walk > 0.05 else float(np.sign(e.facing))
    facing = float(e.facing)
    hip_y, sh_y = 0.53 * H, 0.83 * H
    hx = -0.012 * H * facing  # the head outline turns; the mouth stays on the centre line
    torso_hw = 0.12 * H * b * (1 - 0.12 * abs(facing))

    cv.begin(masks[i][0], masks[i][1], i)
    _draw_hair(cv, P, H, look.hair_style, hair, hx, back=True)
    for side in (-1, 1):  # legs
        a = side * swing
        bend = 0.35 * walk * (0.5 + 0.5 * math.sin(side * phase + 1.0))
        hip = np.array([side * 0.05 * H * b, hip_y])
        knee = hip + 0.245 * H * np.array([math.sin(a), -math.cos(a)])
        ankle = knee + 0.235 * H * np.array([math.sin(a - direction * bend), -math.cos(a - direction * bend)])
        cv.capsule(*P(*hip), *P(*knee), 0.046 * H * b * P.p, 0.036 * H * b * P.p, trousers, shade=1.0)
        cv.capsule(*P(*knee), *P(*ankle), 0.035 * H * b * P.p, 0.025 * H * b * P.p, trousers, shade=1.0)
        sx, sy = P(ankle[0] + direction * 0.012 * H, ankle[1] - 0.018 * H)
        cv.ellipse(sx, sy, (0.03 + 0.012 * abs(direction)) * H * P.p, 0.018 * H * P.p, shoes, shade=0.8)
    cv.box(*P(0, hip_y + 0.015 * H), 0.095 * H * b * P.p, 0.045 * H * P.p, trousers, radius=0.02 * H * P.p, shade=1.0)
    top, bottom = sh_y + 0.012 * H, hip_y - 0.005 * H
    cv.box(*P(0, (top + bottom) / 2), torso_hw * P.p, (top - bottom) / 2 * P.p, shirt, radius=0.04 * H * P.p,
           taper=0.88 if look.female else 0.8, shade=1.0)
    cv.box(*P(0, hip_y + 0.01 * H), 0.085 * H * b * P.p, 0.008 * H * P.p, shirt * 0.6)  # belt line / hem shadow
    cv.capsule(*P(0, sh_y - 0.02 * H), *P(0, 0.9 * H), 0.024 * H * P.p, 0.022 * H * P.p, skin * 0.85, shade=1.0)
    cv.ellipse(*P(0, sh_y + 0.004 * H), 0.03 * H * P.p, 0.016 * H * P.p, skin * 0.9)  # neckline
    under_chin = held is not None and scene.entities[held].instrument == "violin"
    if under_chin:  # the violin sits under the chin: the head is drawn over it
        hands_over = _draw_held_for(cv, scene, held, k, P, light, masks, i)
    _draw_head(cv, P, e, k, H, skin, hair, hx, facing)
    _draw_hair(cv, P, H, look.hair_style, hair, hx, back=False)

    arms = _arm_targets(scene, e, k, style, P, H, held, swing)
    shoulders = {side: np.array([side * (torso_hw - 0.025 * H), sh_y - 0.015 * H]) for side in (-1, 1)}
    if held is not None and not under_chin:
        hands_over = _draw_held_for(cv, scene, held, k, P, light, masks, i)
    for side in (-1, 1):
        fore = arms.get("fore", {}).get(side, 0.175 * H)  # shorter where the forearm points at the camera
        elbow, hand = _ik(shoulders[side], arms[side], 0.175 * H, fore, arms["elbow"][side])
        upper = (shoulders[side], elbow, 0.031 * H * b * P.p, 0.025 * H * b * P.p)
        lower = (elbow, hand, 0.025 * H * b * P.p, 0.02 * H * b * P.p)
        if style.long_sleeves:
            cv.capsule(*P(*upper[0]), *P(*upper[1]), upper[2], upper[3], shirt, shade=1.0)
            cv.capsule(*P(*lower[0]), *P(*lower[1]), lower[2], lower[3], skin, shade=1.0)
            cuff = elbow + 0.85 * (hand - elbow)
            cv.capsule(*P(*elbow), *P(*cuff), lower[2] * 1.05, lower[3] * 1.05, shirt, shade=1.0)
        else:
            cv.capsule(*P(*upper[0]), *P(*upper[1]), upper[2], upper[3], skin, shade=1.0)
            cv.capsule(*P(*lower[0]), *P(*lower[1]), lower[2], lower[3], skin, shade=1.0)
            cv.capsule(*P(*upper[0]), *P(*(0.45 * upper[0] + 0.55 * elbow)), upper[2] * 1.1, upper[3] * 1.15, shirt,
                       shade=1.0)
        cv.ellipse(*P(*hand), 0.022 * H * P.p, 0.024 * H * P.p, skin, shade=1.0)
    if held is not None and hands_over is not None:
        cv.begin(masks[held][0], masks[held][1], held)
        hands_over()
    cv.begin(None, None, -1)


def _draw_held_for(cv, scene, j, k, P, light, masks, player):
    """Paint held instrument j into its own mask, then switch back to the player's; returns _draw_held's callable."""
    cv.begin(masks[j][0], masks[j][1], j)
    over = _draw_held(cv, scene, j, k, P, light)
    cv.begin(masks[player][0], masks[player][1], player)
    return over


def _draw_head(cv, P, e, k, H, skin, hair, hx, facing):
    """Ears, face, eyes, nose and the talking mouth, centred so the mouth is at (x_m, MOUTH_HEIGHT * H)."""
    cy = 0.962 * H
    for side in (-1, 1):
        cv.ellipse(*P(hx + side * 0.053 * H, cy - 0.006 * H), 0.011 * H * P.p, 0.017 * H * P.p, skin * 0.9)
    cv.ellipse(*P(hx, cy), 0.053 * H * P.p, 0.068 * H * P.p, skin, shade=0.8)
    fx = 0.012 * H * facing
    head_px = 0.064 * H * P.p
    for side in (-1, 1):
        ex, ey = P(fx + side * 0.02 * H, cy + 0.006 * H)
        if head_px > 6:
            cv.ellipse(ex, ey, 0.01 * H * P.p, 0.0055 * H * P.p, (0.92, 0.92, 0.9))
            cv.capsule(*P(fx + side * 0.02 * H - 0.01 * H, cy + 0.021 * H), *P(fx + side * 0.02 * H + 0.01 * H,
                       cy + 0.021 * H), 0.003 * H * P.p, 0.003 * H * P.p, hair)
        cv.ellipse(ex + facing * 0.004 * H * P.p, ey, 0.005 * H * P.p, 0.005 * H * P.p, (0.08, 0.06, 0.06))
    cv.ellipse(*P(fx * 1.4, cy - 0.016 * H), 0.008 * H * P.p, 0.012 * H * P.p, skin * 0.82)
    mouth = float(e.mouth_open[k]) if e.mouth_open is not None else 0.0
    mx, my = P(0.0, MOUTH_HEIGHT * H)
    lip = _mix(skin, (0.75, 0.3, 0.3), 0.45)
    cv.ellipse(mx, my, 0.02 * H * P.p, (0.005 + 0.012 * mouth) * H * P.p, lip)
    cv.ellipse(mx, my, 0.016 * H * P.p, (0.0015 + 0.011 * mouth) * H * P.p, (0.3, 0.05, 0.06))


def _draw_hair(cv, P, H, style, hair, hx, back):
    """The hair behind the head (back=True) or the cap and fringe over it (back=False)."""
    cy = 0.962 * H
    if back:
        if style == "long":
            cv.box(*P(hx, 0.9 * H), 0.063 * H * P.p, 0.085 * H * P.p, hair, radius=0.05 * H * P.p, taper=1.2, shade=0.8)
        elif style == "curly":
            cv.ellipse(*P(hx, cy + 0.01 * H), 0.07 * H * P.p, 0.078 * H * P.p, hair, bumps=11, bump_amp=0.07, shade=0.8)
        elif style == "bun":
            cv.ellipse(*P(hx, 1.035 * H), 0.027 * H * P.p, 0.025 * H * P.p, hair, shade=0.8)
        if style != "bald":
            cv.ellipse(*P(hx, cy + 0.006 * H), 0.057 * H * P.p, 0.07 * H * P.p, hair, shade=0.8)
        return
    if style == "bald":
        return
    hcx, hcy = P(hx, cy + 0.006 * H)
    rx, ry = 0.057 * H * P.p, 0.07 * H * P.p
    _, cut = P(0, cy + 0.028 * H)
    slope = 0.25
    bumps, amp = (11, 0.07) if style == "curly" else (0, 0.0)

    def cap(X, Y):
        d, nx = _sd_ellipse(X, Y, hcx, hcy, rx, ry, bumps=bumps, bump_amp=amp)
        return np.maximum(d, Y - (cut + slope * (X - hcx))), nx

    cv.shape((hcx - rx * 1.1, hcy - ry * 1.1, hcx + rx * 1.1, hcy + ry), cap, hair, shade=0.8)


def _arm_targets(scene, e, k, style, P, H, held, swing):
    """Hand positions {-1: (bx, by), 1: (bx, by)} in body metres, and "elbow": {side: bend sign for _ik}."""
    hang = {}
    for side in (-1, 1):
        a = side * 0.1 - 0.8 * side * swing
        hang[side] = np.array([side * (0.1 * H) + 0.33 * H * math.sin(a), 0.815 * H - 0.33 * H * math.cos(a)])
    targets = {"elbow": {-1: -1.0, 1: 1.0}, -1: hang[-1], 1: hang[1]}  # elbows outwards
    talking = float(e.mouth_open[k]) if e.mouth_open is not None else 0.0
    if talking > 0.2 and held is None:  # a speaking gesture with one forearm
        side = style.gesture_side
        lift = 0.5 + 0.5 * math.sin(2.1 * k + style.phase)
        targets[side] = np.array([side * 0.09 * H, (0.64 + 0.07 * lift) * H])
        targets["fore"] = {side: 0.08 * H}
    if held is not None:
        targets.update(_held_hand_targets(scene, held, k, P, e))
    elif style.plays is not None:
        inst = scene.entities[style.plays]
        reach = (inst.x_m[k] - e.x_m[k])
        y = 0.8 if inst.instrument == "piano" else 0.75
        bob = 0.03 * e.motion[k] * math.sin(3.1 * k + style.phase)
        side = 1 if reach > 0 else -1
        targets[side] = np.array([reach - side * 0.25, y + bob])
        targets[-side] = np.array([reach - side * 0.45, y - bob])
        targets["elbow"] = {-1: -float(side), 1: -float(side)}
    return targets


# ---- instruments ---------------------------------------------------------------------------------------------
def _guitar_frame(scene, j, k):
    """Guitar geometry in picture pixels: sound hole centre G, neck direction u, perpendicular n, px per metre."""
    e = scene.entities[j]
    Q = _Place(scene.camera, e.x_m[k], e.z_m[k])
    G = np.array(Q(0.0, INSTRUMENT_SOUND_HEIGHT_M[e.instrument]))
    ang = math.radians(28 if e.instrument == "guitar" else 8)
    u = np.array([math.cos(ang), -math.sin(ang)])
    return Q, G, u, np.array([-u[1], u[0]]), Q.p


def _held_hand_targets(scene, j, k, P, player):
    """Where the player's hands go for held instrument j (body metres of the player)."""
    e = scene.entities[j]
    Q, G, u, n, p = _guitar_frame(scene, j, k)
    move = float(player.motion[k]) * math.sin(2.7 * k + j)
    if e.instrument == "guitar":
        strum = P.local(*(G + n * (0.05 + 0.05 * move) * p - u * 0.06 * p))
        fret = P.local(*(G + u * 0.45 * p))
        return {-1: np.array(strum), 1: np.array(fret), "elbow": {-1: -1.0, 1: -1.0}}
    if e.instrument == "violin":
        bow = np.array([math.cos(math.radians(15)), -math.sin(math.radians(15))])
        V = G + u * 0.1 * p
        hand = V - bow * (0.42 + 0.1 * move) * p
        return {-1: np.array(P.local(*hand)), 1: np.array(P.local(*(V + u * 0.32 * p))), "elbow": {-1: -1.0, 1: -1.0},
                "fore": {-1: 0.1 * player.person.height_m}}
    # trumpet: both hands at the valves, between the mouth and the bell
    M = np.array(P(0.0, MOUTH_HEIGHT * player.person.height_m))
    mid = 0.5 * (M + G)
    return {-1: np.array(P.local(*(mid + np.array([-0.04 * p, 0.03 * p])))),
            1: np.array(P.local(*(mid + np.array([0.05 * p, 0.0])))), "elbow": {-1: -1.0, 1: 1.0}}


def _draw_held(cv, scene, j, k, P, light):
    """Paint held instrument j for frame k; returns a callable that paints parts over the hands (or None)."""
    e = scene.entities[j]
    Q, G, u, n, p = _guitar_frame(scene, j, k)
    level = light.irradiance(e.x_m[k], 1.2, e.z_m[k])
    body = _lit(e.instrument_rgb, light, level)
    dark = _lit((0.12, 0.08, 0.05), light, level)
    player = scene.entities[e.held_by]
    move = float(player.motion[k]) * math.sin(2.7 * k + j)
    ang = math.atan2(u[1], u[0])
    if e.instrument == "guitar":
        for c, grow in ((dark, 0.012), (body, 0.0)):
            cv.ellipse(*(G - u * 0.11 * p), (0.19 + grow) * p, (0.18 + grow) * p, c, angle=ang, shade=0.6)
            cv.ellipse(*(G + u * 0.13 * p), (0.14 + grow) * p, (0.135 + grow) * p, c, angle=ang, shade=0.6)
        cv.box(*(G + u * 0.45 * p), 0.24 * p, 0.024 * p, dark, angle=ang)
        cv.box(*(G + u * 0.72 * p), 0.06 * p, 0.035 * p, dark * 0.7, angle=ang, radius=0.01 * p)
        cv.ellipse(*G, 0.055 * p, 0.055 * p, _mix(body, (1, 1, 1), 0.3))
        cv.ellipse(*G, 0.045 * p, 0.045 * p, (0.03, 0.02, 0.02))
        cv.box(*(G - u * 0.2 * p), 0.015 * p, 0.06 * p, dark, angle=ang)
        cv.capsule(*(G - u * 0.2 * p), *(G + u * 0.7 * p), 0.006 * p, 0.006 * p, (0.85, 0.85, 0.8), opacity=0.5)
        return None
    if e.instrument == "violin":
        V = G + u * 0.1 * p  # body centre; the sound point is on its lower bout, under the chin
        for c, grow in ((dark, 0.008), (body, 0.0)):
            cv.ellipse(*(V - u * 0.07 * p), (0.1 + grow) * p, (0.1 + grow) * p, c, angle=ang, shade=0.7)
            cv.ellipse(*(V + u * 0.08 * p), (0.08 + grow) * p, (0.085 + grow) * p, c, angle=ang, shade=0.7)
        cv.box(*(V + u * 0.2 * p), 0.17 * p, 0.014 * p, dark, angle=ang)
        cv.ellipse(*(V + u * 0.38 * p), 0.025 * p, 0.022 * p, body * 0.7)
        for side in (-1, 1):
            cv.capsule(*(V + n * side * 0.04 * p - u * 0.03 * p), *(V + n * side * 0.04 * p + u * 0.03 * p),
                       0.005 * p, 0.005 * p, dark)

        def bow():
            b = np.array([math.cos(math.radians(15)), -math.sin(math.radians(15))])
            hand = V - b * (0.42 + 0.1 * move) * p
            cv.capsule(*hand, *(hand + b * 0.72 * p), 0.009 * p, 0.007 * p, _lit((0.35, 0.2, 0.1), light, level))
            cv.capsule(*(hand + n * 0.014 * p), *(hand + b * 0.7 * p + n * 0.014 * p), 0.006 * p, 0.006 * p,
                       _lit((0.95, 0.92, 0.85), light, level), opacity=0.8)
        return bow
    # trumpet: mouthpiece at the mouth, leadpipe and valves, bell facing the camera at the sound point
    gold = _lit(e.instrument_rgb, light, level)
    M = np.array(P(0.0, MOUTH_HEIGHT * player.person.height_m))
    mid = 0.5 * (M + G)
    cv.capsule(*M, *(mid + np.array([0.05 * p, 0])), 0.012 * p, 0.014 * p, gold, shade=1.0)
    cv.capsule(*(mid + np.array([0.05 * p, 0])), *G, 0.014 * p, 0.02 * p, gold, shade=1.0)
    cv.box(*(mid + np.array([0.02 * p, 0.01 * p])), 0.045 * p, 0.03 * p, gold * 0.85, radius=0.01 * p, shade=1.0)

    def bell():
        cv.ellipse(*G, 0.075 * p, 0.072 * p, gold * 1.1, shade=1.2)
        cv.ellipse(*G, 0.058 * p, 0.056 * p, gold * 0.7)
        cv.ellipse(*G, 0.03 * p, 0.03 * p, gold * 0.3)
    return bell


def _draw_floor_instrument(cv, scene, j, k, style, light, masks):
    """Paint piano or drum kit j (standing on the floor at its x_m, z_m) for frame k."""
    e, cam = scene.entities[j], scene.camera
    x, z = float(e.x_m[k]), float(e.z_m[k])
    cx, _, p = project(cam, x, 0.0, z)
    if cx + 1.0 * p < 0 or cx - 1.0 * p > PICTURE_WIDTH:
        return
    level = light.irradiance(x, 0.8, z)
    cv.light_side = light.side(x)
    colour = _lit(e.instrument_rgb, light, level)
    cv.begin(masks[j][0], masks[j][1], j)
    if e.instrument == "piano":
        if style.upright:
            _draw_upright_piano(cv, cam, x, z, colour, light, level)
        else:
            _draw_keyboard(cv, cam, x, z, colour, light, level)
    else:
        _draw_drum_kit(cv, cam, x, z, colour, light, level)
    cv.begin(None, None, -1)


def _box3d(cv, cam, x0, x1, y0, y1, z0, z1, front, top, side):
    """An axis-aligned box (metres) with its visible faces: side face, top face, then the front face."""
    def pt(x, y, z):
        px, py, _ = project(cam, x, y, z)
        return float(px), float(py)
    if x0 > 0:
        cv.polygon([pt(x0, y0, z0), pt(x0, y1, z0), pt(x0, y1, z1), pt(x0, y0, z1)], side)
    elif x1 < 0:
        cv.polygon([pt(x1, y0, z0), pt(x1, y1, z0), pt(x1, y1, z1), pt(x1, y0, z1)], side)
    if y1 < cam.eye_height_m:
        cv.polygon([pt(x0, y1, z0), pt(x1, y1, z0), pt(x1, y1, z1), pt(x0, y1, z1)], top)
    cv.polygon([pt(x0, y0, z0), pt(x1, y0, z0), pt(x1, y1, z0), pt(x0, y1, z0)], front)


def _keys_colour(cam, x0, x1, z0, z1, y, light, level):
    """Colour function (X, Y) -> [h, w, 3] of piano keys on the horizontal plane at height y (perspective-correct)."""
    white = _lit((0.95, 0.94, 0.9), light, level)
    black = np.float32(0.05)
    key_w = (x1 - x0) / 36

    def colour(X, Y):
        zz = cam.focal_px * (cam.eye_height_m - y) / np.maximum(Y - cam.horizon_row, 1e-3)
        xx = (X - PICTURE_WIDTH / 2) * zz / cam.focal_px
        q = (xx - x0) / key_w
        frac = q % 1.0
        idx = np.floor(q).astype(np.int64) % 7
        gap = (frac < 0.08)
        has_black = np.isin(idx, (0, 1, 3, 4, 5))
        back_part = (zz - z0) / (z1 - z0) > 0.35
        is_black = has_black & back_part & (frac > 0.68)
        is_black |= np.isin(idx, (1, 2, 4, 5, 6)) & back_part & (frac < 0.32)
        col = np.where(gap[..., None], white * 0.6, white)
        return np.where(is_black[..., None], black, col)
    return colour


def _draw_upright_piano(cv, cam, x, z, colour, light, level):
    """An upright piano 1.45 m wide, 1.2 m tall, with a keybed of black and white keys at 0.72 m."""
    hw, zf, zb = 0.72, z - 0.27, z + 0.27
    _box3d(cv, cam, x - hw, x + hw, 0.0, 1.2, zf, zb, colour, colour * 1.25, colour * 0.75)
    cx, _, p = project(cam, x, 0, zf)
    _, y_top, _ = project(cam, x, 1.05, zf)
    _, y_bot, _ = project(cam, x, 0.85, zf)
    cv.box(float(cx), float(y_top + y_bot) / 2, 0.55 * p, float(y_bot - y_top) / 2, colour * 0.8)  # upper panel
    _, y_mid, _ = project(cam, x, 0.35, zf)
    cv.box(float(cx), float(y_mid), 0.55 * p, 0.2 * p, colour * 0.85)  # lower panel
    kz0, kz1 = zf - 0.25, zf
    _box3d(cv, cam, x - hw + 0.06, x + hw - 0.06, 0.66, 0.74, kz0, kz1, colour * 0.9,
           _keys_colour(cam, x - hw + 0.08, x + hw - 0.08, kz0, kz1, 0.74, light, level), colour * 0.7)
    for sx in (-1, 1):  # cheeks beside the keys
        x0 = x + sx * (hw - 0.05) - 0.05
        _box3d(cv, cam, x0, x0 + 0.1, 0.0, 0.78, kz0 - 0.02, zf, colour * 0.95, colour * 1.2, colour * 0.7)


def _draw_keyboard(cv, cam, x, z, colour, light, level):
    """A stage keyboard on an X stand: slab at 0.76..0.86 m with keys on its top face."""
    hw, zf, zb = 0.62, z - 0.17, z + 0.17
    metal = _lit((0.2, 0.2, 0.22), light, level)
    for sx in (-0.45, 0.45):
        for lean in (-1, 1):
            a = project(cam, x + sx - lean * 0.18, 0.0, z)
            b = project(cam, x + sx + lean * 0.18, 0.76, z)
            cv.capsule(float(a[0]), float(a[1]), float(b[0]), float(b[1]), 0.015 * a[2], 0.015 * b[2], metal)
    _box3d(cv, cam, x - hw, x + hw, 0.76, 0.86, zf, zb, colour, colour * 1.3, colour * 0.7)
    _box3d(cv, cam, x - hw + 0.05, x + hw - 0.05, 0.86, 0.875, zf + 0.02, zf + 0.22, colour,
           _keys_colour(cam, x - hw + 0.05, x + hw - 0.05, zf + 0.02, zf + 0.22, 0.875, light, level), colour)


def _vertical_drum(cv, cam, x, z, r, y0, y1, shell, head):
    """A drum standing upright: shell from y0 to y1 (metres), radius r, with a light head on top."""
    cx, yt, p = project(cam, x, y1, z)
    _, yb, _ = project(cam, x, y0, z)
    cx, yt, yb, p = float(cx), float(yt), float(yb), float(p)
    rx = r * p
    ry_t = max(abs(r * (cam.eye_height_m - y1) / z) * p, 0.5)
    ry_b = max(abs(r * (cam.eye_height_m - y0) / z) * p, 0.5)
    cv.ellipse(cx, yb, rx, ry_b, shell * 0.8)
    cv.box(cx, (yt + yb) / 2, rx, (yb - yt) / 2, shell, shade=1.2)
    cv.ellipse(cx, yt, rx * 1.04, ry_t * 1.04 + 0.5, (0.7, 0.7, 0.72))
    cv.ellipse(cx, yt, rx * 0.95, ry_t * 0.95, head)


def _draw_drum_kit(cv, cam, x, z, colour, light, level):
    """Bass drum facing the camera (covering the 0.55 m sound point), tom, snare, hi-hat and a cymbal on stands."""
    metal = _lit((0.6, 0.6, 0.62), light, level)
    brass = _lit((0.85, 0.68, 0.28), light, level)
    head = _lit((0.92, 0.9, 0.85), light, level)
    for sx, h, r in ((0.6, 1.1, 0.22), (-0.62, 0.88, 0.17)):  # cymbal and hi-hat stands with their plates
        a = project(cam, x + sx, 0.0, z + 0.05)
        b = project(cam, x + sx, h, z + 0.05)
        cv.capsule(float(a[0]), float(a[1]), float(b[0]), float(b[1]), 0.012 * a[2], 0.01 * b[2], metal)
        ry = max(r * abs(cam.eye_height_m - h) / z * b[2], 0.8)
        cv.ellipse(float(b[0]), float(b[1]), r * b[2], ry, brass, angle=0.12 * np.sign(sx), shade=1.2)
        if sx < 0:
            cv.ellipse(float(b[0]), float(b[1]) + 0.03 * b[2], r * b[2], ry, brass * 0.8)
    back = project(cam, x, 0.3, z + 0.2)
    front = project(cam, x, 0.3, z - 0.2)
    cv.capsule(float(back[0]), float(back[1]), float(front[0]), float(front[1]), 0.3 * back[2], 0.3 * front[2],
               colour, shade=1.0)
    fx, fy, fp = (float(v) for v in front)
    cv.ellipse(fx, fy, 0.3 * fp, 0.3 * fp, metal)
    cv.ellipse(fx, fy, 0.275 * fp, 0.275 * fp, head)
    cv.ellipse(fx, fy, 0.12 * fp, 0.12 * fp, colour * 0.9)
    cv.ellipse(fx, fy, 0.09 * fp, 0.09 * fp, head * 0.95)
    _vertical_drum(cv, cam, x + 0.14, z, 0.13, 0.62, 0.82, colour, head)
    leg0 = project(cam, x - 0.42, 0.0, z - 0.15)
    leg1 = project(cam, x - 0.42, 0.5, z - 0.15)
    cv.capsule(float(leg0[0]), float(leg0[1]), float(leg1[0]), float(leg1[1]), 0.01 * leg0[2], 0.01 * leg1[2], metal)
    _vertical_drum(cv, cam, x - 0.42, z - 0.15, 0.18, 0.5, 0.62, metal * 0.9, head)


# ---- the clip ------------------------------------------------------------------------------------------------
def _assign_players(scene, styles):
    """Mark, for each floor instrument, the nearest person as its player (style.plays)."""
    for j, e in enumerate(scene.entities):
        if e.kind != "instrument" or e.held_by is not None:
            continue
        people = [i for i, p in enumerate(scene.entities) if p.kind == "person"]
        if people:
            best = min(people, key=lambda i: np.mean(np.hypot(scene.entities[i].x_m - e.x_m,
                                                              scene.entities[i].z_m - e.z_m)))
            styles[best].plays = j


def _boxes(scene, masks, owner):
    """Box dicts for one frame from the entity coverage masks [144, 256] and the owner map."""
    out = []
    for i, (mask, _) in masks.items():
        cols = np.flatnonzero(mask.max(axis=0) > 0.05)
        if cols.size == 0:
            continue
        rows = np.flatnonzero(mask.max(axis=1) > 0.05)
        solid = mask > 0.5
        total = int(solid.sum())
        visible = float((solid & (owner == i)).sum() / total) if total else 0.0
        e = scene.entities[i]
        out.append({"entity": i, "kind": e.kind,
                    "box": [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)],
                    "visible_fraction": visible, "sounding": e.source is not None})
    return out


def _postprocess(frames, scene):
    """Slight blur, vignette and sensor noise on float frames [20, 144, 256, 3] -> uint8."""
    blur = frames.copy()
    blur[:, 1:-1] = 0.25 * frames[:, :-2] + 0.5 * frames[:, 1:-1] + 0.25 * frames[:, 2:]
    blur2 = blur.copy()
    blur2[:, :, 1:-1] = 0.25 * blur[:, :, :-2] + 0.5 * blur[:, :, 1:-1] + 0.25 * blur[:, :, 2:]
    out = 0.45 * frames + 0.55 * blur2
    yy, xx = np.mgrid[0:PICTURE_HEIGHT, 0:PICTURE_WIDTH].astype(np.float32)
    r2 = ((xx - PICTURE_WIDTH / 2) / (PICTURE_WIDTH / 2)) ** 2 + ((yy - PICTURE_HEIGHT / 2) / (PICTURE_HEIGHT / 2)) ** 2
    out *= (1 - 0.15 * r2)[None, :, :, None]
    rng = np.random.default_rng(scene.seed + 303)
    sigma = np.float32(rng.uniform(0.004, 0.011))
    out += sigma * rng.standard_normal((NUM_FRAMES, PICTURE_HEIGHT, PICTURE_WIDTH, 1), dtype=np.float32)
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def render_video(scene):
    """Render the scene's 20 pictures and per-frame entity boxes.

    Returns (pictures uint8 [20, 144, 256, 3], boxes): boxes[k] is a list of dicts, one per entity at least partly
    in picture k: {"entity": index, "kind": "person" | "instrument", "box": [x0, y0, x1, y1] picture pixels
    (clipped), "visible_fraction": share of the entity not hidden by nearer ones (0..1), "sounding": has a source}.
    """
    background = render_background(scene)
    light = _Light(scene, _ceiling_height(scene))
    styles = [_Style(scene, i) for i in range(len(scene.entities))]
    _assign_players(scene, styles)
    held = {e.held_by: j for j, e in enumerate(scene.entities) if e.kind == "instrument" and e.held_by is not None}
    frames = np.empty((NUM_FRAMES, PICTURE_HEIGHT, PICTURE_WIDTH, 3), np.float32)
    boxes = []
    for k in range(NUM_FRAMES):
        img = background.copy()
        cv = Canvas(img)
        for i, e in enumerate(scene.entities):
            if e.held_by is None:
                radius = 0.3 if e.kind == "person" else (0.85 if e.instrument == "piano" else 0.75)
                _draw_shadow(cv, scene.camera, e.x_m[k], e.z_m[k], radius * (e.person.build if e.person else 1), light)
        masks = {}
        owner = np.full((PICTURE_HEIGHT, PICTURE_WIDTH), -1, np.int16)
        for i in range(len(scene.entities)):
            masks[i] = (np.zeros((PICTURE_HEIGHT, PICTURE_WIDTH), np.float32), owner)
        order = sorted((i for i, e in enumerate(scene.entities) if e.held_by is None),
                       key=lambda i: -scene.entities[i].z_m[k])
        for i in order:
            if scene.entities[i].kind == "person":
                _draw_person(cv, scene, i, k, styles[i], light, held.get(i), masks)
            else:
                _draw_floor_instrument(cv, scene, i, k, styles[i], light, masks)
        frames[k] = img
        boxes.append(_boxes(scene, masks, owner))
    return _postprocess(frames, scene), boxes
