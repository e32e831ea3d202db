#!/usr/bin/env python3
"""Draws the offered-load sweep of `make bench` as two SVG charts.

Input: lines of `bench_load` output, each prefixed with the server's name:
    SERVER RESULT offered_per_s=.. achieved_per_s=.. p50_us=.. p99_us=.. p999_us=.. max_us=..
Output: OUT_PREFIX-throughput.svg (achieved against offered requests/s) and
OUT_PREFIX-latency.svg (p50/p99/p99.9 against offered requests/s, log scale).

Plain SVG written here rather than matplotlib: two line charts do not justify
a plotting stack in the benchmark's dependencies, and the files stay small and
diffable.

usage: plot.py SWEEP.txt OUT_PREFIX
"""
import math
import re
import sys

W, H = 760, 420
LEFT, RIGHT, TOP, BOTTOM = 80, 200, 40, 60
COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b']


def read(path):
    series = {}
    for line in open(path):
        parts = line.split(None, 1)
        if len(parts) < 2 or 'RESULT' not in parts[1]:
            continue
        fields = {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', parts[1])}
        series.setdefault(parts[0], []).append(fields)
    for rows in series.values():
        rows.sort(key=lambda r: r['offered_per_s'])
    return series


def nice_max(v):
    if v <= 0:
        return 1
    mag = 10 ** math.floor(math.log10(v))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if v <= step * mag:
            return step * mag
    return 10 * mag


def chart(title, xlabel, ylabel, lines, out, log_y=False, hline=None):
    """lines: [(label, [(x, y), ...], dashed)]"""
    xs = [x for _, pts, _ in lines for x, _ in pts]
    ys = [y for _, pts, _ in lines for _, y in pts if y > 0]
    if hline:
        ys.append(hline[0])
    xmax = nice_max(max(xs))
    if log_y:
        ylo = 10 ** math.floor(math.log10(min(ys)))
        yhi = 10 ** math.ceil(math.log10(max(ys)))
    else:
        ylo, yhi = 0, nice_max(max(ys))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x):
        return LEFT + pw * x / xmax

    def py(y):
        if log_y:
            y = max(y, ylo)
            return TOP + ph * (1 - (math.log10(y) - math.log10(ylo)) / (math.log10(yhi) - math.log10(ylo)))
        return TOP + ph * (1 - (y - ylo) / (yhi - ylo))

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold">{title}</text>']
    for i in range(6):
        x = xmax * i / 5
        svg.append(f'<line x1="{px(x):.1f}" y1="{TOP}" x2="{px(x):.1f}" y2="{TOP + ph}" stroke="#eee"/>')
        svg.append(f'<text x="{px(x):.1f}" y="{TOP + ph + 18}" text-anchor="middle">{x:,.0f}</text>')
    ticks = []
    if log_y:
        t = ylo
        while t <= yhi * 1.0001:
            ticks.append(t)
            t *= 10
    else:
        ticks = [ylo + (yhi - ylo) * i / 5 for i in range(6)]
    for t in ticks:
        svg.append(f'<line x1="{LEFT}" y1="{py(t):.1f}" x2="{LEFT + pw}" y2="{py(t):.1f}" stroke="#eee"/>')
        label = f'{t:g}' if log_y else f'{t:,.0f}'
        svg.append(f'<text x="{LEFT - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{label}</text>')
    svg.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    svg.append(f'<text x="{LEFT + pw / 2}" y="{H - 15}" text-anchor="middle">{xlabel}</text>')
    svg.append(f'<text transform="translate(18,{TOP + ph / 2}) rotate(-90)" text-anchor="middle">{ylabel}</text>')
    if hline:
        value, label = hline
        svg.append(f'<line x1="{LEFT}" y1="{py(value):.1f}" x2="{LEFT + pw}" y2="{py(value):.1f}" '
                   f'stroke="#999" stroke-dasharray="2,3"/>')
        svg.append(f'<text x="{LEFT + 4}" y="{py(value) - 4:.1f}" fill="#666">{label}</text>')
    for i, (label, pts, dashed) in enumerate(lines):
        color = COLORS[i % len(COLORS)]
        path = ' '.join(f'{px(x):.1f},{py(y):.1f}' for x, y in pts)
        dash = ' stroke-dasharray="6,4"' if dashed else ''
        svg.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        for x, y in pts:
            svg.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
        ly = TOP + 14 + 18 * i
        svg.append(f'<line x1="{LEFT + pw + 12}" y1="{ly - 4}" x2="{LEFT + pw + 32}" y2="{ly - 4}" '
                   f'stroke="{color}" stroke-width="2"{dash}/>')
        svg.append(f'<text x="{LEFT + pw + 38}" y="{ly}">{label}</text>')
    svg.append('</svg>')
    with open(out, 'w') as f:
        f.write('\n'.join(svg) + '\n')


def main():
    series = read(sys.argv[1])
    prefix = sys.argv[2]
    if not series:
        sys.exit('plot.py: no RESULT lines in ' + sys.argv[1])
    through = []
    for name, rows in series.items():
        through.append((name, [(r['offered_per_s'], r['achieved_per_s']) for r in rows], False))
    top = max(r['offered_per_s'] for rows in series.values() for r in rows)
    through.append(('offered', [(0, 0), (top, top)], True))
    chart('Throughput against offered load', 'offered requests/s (open loop)', 'answered requests/s',
          through, prefix + '-throughput.svg')
    lat = []
    for name, rows in series.items():
        for key, label, dashed in (('p50_us', 'p50', False), ('p99_us', 'p99', True),
                                   ('p999_us', 'p99.9', True)):
            if name != 'meshhook-ingest' and key != 'p99_us':
                continue  # the baseline's p99 alone keeps the chart readable
            lat.append((f'{name} {label}', [(r['offered_per_s'], r[key] / 1000) for r in rows], dashed))
    chart('Latency against offered load (Kafka ack included for meshhook-ingest)',
          'offered requests/s (open loop)', 'latency, ms (log scale)', lat, prefix + '-latency.svg',
          log_y=True, hline=(10, '10 ms (p99 target at half the peak)'))


if __name__ == '__main__':
    main()
