// The explorer's drawing (pipeline/pictures/explorer.py inlines this second): SVG views of a
// plane, P(clockwise) over them as the static pictures draw it (ten bands and the 0.5 line),
// and trails of states. Geometry is float64: it places marks, it computes no model's numbers.
"use strict";
const explorerDrawing = (() => {
  const { DATA, format } = explorerNumbers;
  const [CCW, CW] = DATA.colours;
  const SVG = "http://www.w3.org/2000/svg";
  const SVG_TAGS = new Set([
    "svg", "g", "defs", "marker", "path", "circle", "line", "polygon", "polyline", "rect", "text",
    "title",
  ]);

  /** A new element (SVG or HTML by its tag) with attributes and text, appended to `parent`. */
  function element(tag, attributes = {}, parent = null, text = null) {
    const node = SVG_TAGS.has(tag)
      ? document.createElementNS(SVG, tag)
      : document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text !== null) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  const dot = (a, b) => a.reduce((sum, value, k) => sum + value * b[k], 0);
  const clamp = (value, limit) => Math.max(-limit, Math.min(limit, value));
  const sideColour = (probability) => (probability > 0.5 ? CW : CCW);

  /** A hidden state as a point of the static pictures' plane. */
  const project = (plane, state) =>
    plane.components.map((row) => dot(row, state.map((value, k) => value - plane.mean[k])));

  /** The classifier's logit over the plane's points p, a . p + c: exact, since the plane holds
   *  the classifier's direction (or is the hidden space itself). */
  function planeLogit(variant, plane) {
    const weight = variant.classifier.weight;
    return {
      a: plane.components.map((row) => dot(row, weight)),
      c: dot(weight, plane.mean) + variant.classifier.bias,
    };
  }

  function niceStep(raw) {
    const power = 10 ** Math.floor(Math.log10(raw));
    return [1, 2, 2.5, 5, 10].map((m) => m * power).find((step) => step >= raw);
  }

  /** A square view of [-limit, limit]^2 on `size` pixels inside margins, with ticks and the
   *  axes' names; the view maps plane coordinates to pixels (x, y). */
  function axesIn(svg, { size, limit, names, left = 46, top = 8, bottom = 40, ticks = 5 }) {
    svg.setAttribute("width", left + size + 10);
    svg.setAttribute("height", top + size + bottom);
    const x = (value) => left + ((value + limit) / (2 * limit)) * size;
    const y = (value) => top + ((limit - value) / (2 * limit)) * size;
    const step = niceStep((2 * limit) / ticks);
    const bottomEdge = top + size;
    for (let v = Math.ceil(-limit / step) * step; v <= limit + 1e-9; v += step) {
      const label = format(v, step < 1 ? 1 : 0);
      element("line", { x1: x(v), x2: x(v), y1: bottomEdge, y2: bottomEdge + 4, stroke: "#555" }, svg);
      const below = { x: x(v), y: bottomEdge + 16, "text-anchor": "middle", class: "tick" };
      element("text", below, svg, label);
      element("line", { x1: left - 4, x2: left, y1: y(v), y2: y(v), stroke: "#555" }, svg);
      element("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, svg, label);
    }
    const under = { x: left + size / 2, y: bottomEdge + 34, "text-anchor": "middle", class: "axis-name" };
    element("text", under, svg, names[0]);
    const middle = top + size / 2;
    const turned = { x: 12, y: middle, "text-anchor": "middle", class: "axis-name" };
    element("text", { ...turned, transform: `rotate(-90 12 ${middle})` }, svg, names[1]);
    return { size, limit, x, y, svg, left, top };
  }

  function frame(view) {
    const box = { x: view.left, y: view.top, width: view.size, height: view.size };
    element("rect", { ...box, fill: "none", stroke: "#222" }, view.svg);
  }

  /** The part of `polygon` where a . p + c >= 0 (Sutherland-Hodgman against one line). */
  function clip(polygon, a, c) {
    const value = (p) => a[0] * p[0] + a[1] * p[1] + c;
    const kept = [];
    polygon.forEach((p, k) => {
      const q = polygon[(k + 1) % polygon.length];
      const [vp, vq] = [value(p), value(q)];
      if (vp >= 0) kept.push(p);
      if (vp >= 0 !== vq >= 0) {
        const share = vp / (vp - vq);
        kept.push([p[0] + share * (q[0] - p[0]), p[1] + share * (q[1] - p[1])]);
      }
    });
    return kept;
  }

  /** P(clockwise) = sigmoid(a . p + c) over the view as the static pictures draw it: ten bands
   *  of the colour map at their alpha, and the 0.5 line where it crosses the view. */
  function field(view, { a, c }) {
    const l = view.limit;
    const square = [[-l, -l], [-l, l], [l, l], [l, -l]];
    const bands = DATA.bands.length;
    const pixels = (polygon) => polygon.map(([u, v]) => `${view.x(u)},${view.y(v)}`).join(" ");
    DATA.bands.forEach((colour, band) => {
      const [low, high] = [band / bands, (band + 1) / bands].map((p) => Math.log(p / (1 - p)));
      let polygon = square;
      if (Number.isFinite(low)) polygon = clip(polygon, a, c - low);
      if (Number.isFinite(high)) polygon = clip(polygon, a.map((v) => -v), high - c);
      if (polygon.length < 3) return;
      const paint = { fill: colour, stroke: colour, "stroke-width": 0.5 };
      const alpha = { "fill-opacity": DATA.bandAlpha, "stroke-opacity": DATA.bandAlpha };
      element("polygon", { points: pixels(polygon), ...paint, ...alpha }, view.svg);
    });
    const crossings = [];
    square.forEach((p, k) => {
      const q = square[(k + 1) % square.length];
      const [vp, vq] = [p, q].map(([u, v]) => a[0] * u + a[1] * v + c);
      if (vp !== vq && vp <= 0 !== vq <= 0) {
        const share = vp / (vp - vq);
        crossings.push([p[0] + share * (q[0] - p[0]), p[1] + share * (q[1] - p[1])]);
      }
    });
    if (crossings.length === 2) {
      const [[u1, v1], [u2, v2]] = crossings;
      const ends = { x1: view.x(u1), y1: view.y(v1), x2: view.x(u2), y2: view.y(v2) };
      element("line", { ...ends, stroke: "black", "stroke-width": 1.2 }, view.svg);
    }
  }

  /** States (plane points) joined in reading order from `start` (if any), each numbered by
   *  `labels` and coloured by the side of the boundary it lies on; the one at `current` ringed,
   *  the one the classifier reads (`read`) filled. States outside the view sit on its edge. */
  function trail(view, places, { labels, probabilities, current, read, start = null }) {
    const inside = (p) => [view.x(clamp(p[0], view.limit)), view.y(clamp(p[1], view.limit))];
    const route = (start ? [start, ...places] : places).map(inside);
    const dashed = { fill: "none", stroke: "#333", "stroke-width": 1.2, "stroke-dasharray": "4 3" };
    element("polyline", { points: route.map((p) => p.join(",")).join(" "), ...dashed }, view.svg);
    if (start) {
      const [sx, sy] = inside(start);
      element("circle", { cx: sx, cy: sy, r: 3.5, fill: "#777" }, view.svg);
      element("text", { x: sx + 6, y: sy + 14, class: "tick" }, view.svg, "start: 0");
    }
    places.forEach((place, k) => {
      const [cx, cy] = inside(place);
      const colour = sideColour(probabilities[k]);
      if (k === current) {
        const ring = { cx, cy, r: 10, fill: "none", stroke: "#222", "stroke-width": 2.5 };
        element("circle", ring, view.svg);
      }
      const fill = k === read ? colour : "white";
      const mark = element("circle", { cx, cy, r: 6, fill, stroke: colour, "stroke-width": 2.5 }, view.svg);
      const reading = `P(clockwise) ${format(probabilities[k], 3)} if read here`;
      element("title", {}, mark, `${labels[k]}: ${reading}`);
      const weight = k === current ? "bold" : "normal";
      element("text", { x: cx + 9, y: cy - 8, "font-weight": weight }, view.svg, labels[k]);
    });
  }

  return { element, clamp, project, planeLogit, niceStep, axesIn, frame, field, trail };
})();
