"""Extract Natural Earth 1:50m coastlines and land borders into src/dl4ds/datasets/data/naturalearth_50m_lines.npz.

Run once by a maintainer, not at run time. The source is Debian's packaging of the
CRAN package rnaturalearthdata (Natural Earth, public domain; packaging CC0)::

    apt-get download r-cran-rnaturalearthdata && dpkg -x r-cran-rnaturalearthdata_*.deb deb
    python -m venv /tmp/ne && /tmp/ne/bin/pip install rdata numpy
    /tmp/ne/bin/python tools/extract_natural_earth.py deb/usr/lib/R/site-library/rnaturalearthdata/data/Rdata \\
        src/dl4ds/datasets/data/naturalearth_50m_lines.npz

The R lazy-load database (``Rdata.rdx`` index, ``Rdata.rdb`` xz-compressed
entries) holds ``sp`` objects: ``coastline50`` (lines) and ``countries50``
(polygons). Borders are the polygon edges that two countries share, each kept
once. Points are stored as int16 hundredths of a degree.
"""

import bz2
import gzip
import itertools
import lzma
import struct
import sys
import warnings
import zlib

import numpy as np
from rdata import parser
from rdata.conversion import convert

SCALE = 100  # hundredths of a degree (about 1 km)


def load(base: str):
    """A function reading one object of the R lazy-load database ``base`` (.rdx/.rdb) by name."""
    index = convert(parser.parse_data(gzip.decompress(open(base + ".rdx", "rb").read())))["variables"]
    blob = open(base + ".rdb", "rb").read()

    def read(name: str):
        offset, size = (int(v) for v in index[name])
        entry = blob[offset : offset + size]
        (length,) = struct.unpack(">i", entry[:4])
        kind, body = entry[4:5], entry[5:]
        if kind == b"Z":
            filters = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
            data = lzma.decompress(body, format=lzma.FORMAT_RAW, filters=filters)
        elif kind == b"2":
            data = bz2.decompress(body)
        else:
            data = zlib.decompress(entry[4:])
        return convert(parser.parse_data(data[:length]))

    return read


def shared_edges(rings: list[tuple[int, np.ndarray]]) -> list[np.ndarray]:
    """The runs of polygon edges that belong to two different countries, each kept once."""

    def key(a, b):
        a, b = tuple(np.round(a * SCALE).astype(int)), tuple(np.round(b * SCALE).astype(int))
        return (a, b) if a <= b else (b, a)

    owners: dict = {}
    for number, ring in rings:
        for a, b in itertools.pairwise(ring):
            owners.setdefault(key(a, b), set()).add(number)
    borders, done = [], set()
    for _, ring in rings:
        run: list = []
        for a, b in itertools.pairwise(ring):
            edge = key(a, b)
            if len(owners[edge]) > 1 and edge not in done:
                done.add(edge)
                run = run or [a]
                run.append(b)
            elif run:
                borders.append(np.array(run))
                run = []
        if run:
            borders.append(np.array(run))
    return borders


def pack(lines: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The lines as one (points, 2) int16 array of hundredths of a degree, and the length of each line."""
    parts = []
    for line in lines:
        points = np.round(line * SCALE).astype(np.int16)
        points = points[np.r_[True, np.any(points[1:] != points[:-1], axis=1)]]
        if len(points) >= 2:
            parts.append(points)
    return np.concatenate(parts), np.array([len(p) for p in parts], np.int32)


def main(base: str, output: str) -> None:
    warnings.simplefilter("ignore")  # rdata warns about the sp classes it returns as plain objects
    read = load(base)
    coast = [np.asarray(line.coords, float) for lines in read("coastline50").lines for line in lines.Lines]
    countries = read("countries50").polygons
    rings = [(n, np.asarray(ring.coords, float)) for n, country in enumerate(countries) for ring in country.Polygons]
    coastlines, coastline_lengths = pack(coast)
    borders, border_lengths = pack(shared_edges(rings))
    np.savez_compressed(
        output,
        coastlines=coastlines,
        coastline_lengths=coastline_lengths,
        borders=borders,
        border_lengths=border_lengths,
        scale=np.int32(SCALE),
    )
    print(
        f"{len(coastline_lengths)} coastlines ({len(coastlines)} points), {len(border_lengths)} borders ({len(borders)} points)"
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
