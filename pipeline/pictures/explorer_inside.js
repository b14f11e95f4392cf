// Inside one variant (pipeline/pictures/explorer.py inlines this third): for a recurrent variant,
// the hidden state after each step over the decision boundary in the static pictures' plane and
// scales, each direction of a bidirectional one in its own plane, and every state and gate in
// tables; for conv1d, the filter's response to each pair of points.
"use strict";
const explorerInside = (() => {
  const { DATA, sigmoid, logitOf, scoreRecurrent, format, pointText } = explorerNumbers;
  const { element, project, planeLogit, axesIn, frame, field, trail } = explorerDrawing;
  const [CCW, CW] = DATA.colours;
  const DIRECTIONS = ["forward", "backward"];

  /** How many steps the slider has for `points`: one per point, or per pair for conv1d. */
  const stepsOf = (variant, points) =>
    Math.max(1, variant.arch === "conv1d" ? points.length - 1 : points.length);

  /** Fill parts.heading, note, stepText, figures, legend and tables for `variant`'s `result`
   *  on `points` (result.refusal: why it has none) at step `step` (1-based). */
  function draw(parts, variant, result, points, step) {
    parts.heading.textContent = `Inside ${variant.name} (${variant.description})`;
    for (const part of [parts.figures, parts.legend, parts.tables]) part.replaceChildren();
    if (result.refusal) {
      parts.stepText.textContent = "";
      parts.note.textContent = `No reading: ${result.refusal}`;
      return;
    }
    const length = points.length;
    const turn = result.probability > 0.5 ? "clockwise ↻" : "counter-clockwise ↺";
    const accuracy = `test accuracy ${(100 * variant.accuracy).toFixed(1)}%`;
    const probability = format(result.probability, 4);
    const verdict = `P(clockwise) = ${probability}: it reads the square as ${turn} (${accuracy}).`;
    if (variant.arch === "conv1d") {
      parts.stepText.textContent = `pair ${step} of ${length - 1}: points ${step} → ${step + 1}`;
      parts.note.textContent =
        `${verdict} No hidden state: one filter slides over each pair of consecutive points, ` +
        "and the classifier weighs its response to each pair.";
      convFigure(parts, variant, result, step);
      return;
    }
    const bidirectional = variant.layers[0].length === 2;
    parts.stepText.textContent = bidirectional
      ? `point ${step} of ${length}: forward has read points 1 → ${step}, backward ${length} → ${step}`
      : `step ${step} of ${length}: read point ${step} ${pointText(points[step - 1])}`;
    const lengths = variant.lengths;
    const learned =
      lengths.length === 1 ? `${lengths[0]}-point squares` : `squares of ${lengths.join(", ")} points`;
    parts.note.textContent = lengths.includes(length)
      ? verdict
      : `${verdict} It learned from ${learned}; it reads these ${length} anyway, one step per point.`;
    recurrentFigures(parts, variant, result, step, bidirectional);
    stateTables(parts, variant, result, step, bidirectional);
  }

  function recurrentFigures(parts, variant, result, step, bidirectional) {
    const plane = variant.plane;
    const layers = variant.layers.length;
    const length = result.outputs.length;
    const what = bidirectional
      ? "output at each point ([forward, backward])"
      : "hidden state after each step";
    const where = plane.projected
      ? "the report's projection: classifier direction and the main direction across it"
      : "the hidden space itself";
    const layer = layers > 1 ? `last layer (${layers} of ${layers}): ` : "";
    const box = element("div", { class: "figure" }, parts.figures);
    element("p", { class: "figure-title" }, box, `${layer}${what}, over the decision boundary; ${where}`);
    const label = `${variant.name}: ${what} over the decision boundary`;
    const svg = element("svg", { role: "img", "aria-label": label }, box);
    const view = axesIn(svg, { size: 300, limit: plane.limit, names: plane.axes });
    field(view, planeLogit(variant, plane));
    for (const square of DATA.squares) {
      const [u, v] = project(plane, scoreRecurrent(variant, square.points).outputs.at(-1));
      const corners = [[0, -5], [5, 0], [0, 5], [-5, 0]];
      const points = corners.map(([dx, dy]) => `${view.x(u) + dx},${view.y(v) + dy}`).join(" ");
      const paint = { fill: DATA.colours[square.label], stroke: "white", "stroke-width": 1, opacity: 0.8 };
      const diamond = element("polygon", { points, ...paint }, view.svg);
      const named = `where the noise-free ${square.name} ends (${DATA.labels[square.label]})`;
      element("title", {}, diamond, named);
    }
    const places = result.outputs.map((output) => project(plane, output));
    const probabilities = result.outputs.map((output) => sigmoid(logitOf(variant, output)));
    const labels = result.outputs.map((_, t) => String(t + 1));
    const start = bidirectional ? null : project(plane, result.outputs[0].map(() => 0));
    trail(view, places, { labels, probabilities, current: step - 1, read: length - 1, start });
    frame(view);
    if (bidirectional && variant.hidden === 2) {
      const column = element("div", { class: "figure-column" }, parts.figures);
      const runs = result.layers.at(-1);
      const read = runs.map((run) => run.hidden[length - 1]);
      runs.forEach((run, direction) => directionFigure(column, variant, run, direction, read, step));
    }
    legend(parts.legend, bidirectional);
  }

  /** One direction of the last layer in its own hidden plane (h0, h1), in reading order, over the
   *  boundary the classifier draws there with the other direction held where it is read. */
  function directionFigure(column, variant, run, direction, read, step) {
    const hidden = variant.hidden;
    const length = run.hidden.length;
    const weight = variant.classifier.weight;
    const block = (d) => weight.slice(d * hidden, (d + 1) * hidden);
    const other = 1 - direction;
    const dot = (a, b) => a.reduce((sum, value, k) => sum + value * b[k], 0);
    const rest = dot(block(other), read[other]) + variant.classifier.bias;
    const order = run.hidden.map((_, t) => (direction === 0 ? t : length - 1 - t));
    const box = element("div", { class: "figure" }, column);
    const reads = direction === 0 ? `points 1 → ${length}` : `points ${length} → 1`;
    element("p", { class: "figure-title" }, box, `${DIRECTIONS[direction]} direction: reads ${reads}`);
    const label = `${variant.name}: the ${DIRECTIONS[direction]} direction's hidden state`;
    const svg = element("svg", { role: "img", "aria-label": label }, box);
    const view = axesIn(svg, { size: 170, limit: 1.1, names: ["h0", "h1"], ticks: 4 });
    field(view, { a: block(direction), c: rest });
    trail(
      view,
      order.map((t) => run.hidden[t]),
      {
        labels: order.map((t) => String(t + 1)),
        probabilities: order.map((t) => sigmoid(dot(block(direction), run.hidden[t]) + rest)),
        current: order.indexOf(step - 1),
        read: order.indexOf(length - 1),
        start: [0, 0],
      },
    );
    frame(view);
  }

  function legend(box, bidirectional) {
    const entry = (draw, text) => {
      const item = element("span", {}, box);
      draw(element("svg", { width: 26, height: 16 }, item));
      item.append(` ${text}`);
    };
    const dot = (paint) => (svg) => element("circle", { cx: 13, cy: 8, r: 5, ...paint }, svg);
    entry(dot({ fill: CW }), `${DATA.labels[1]} side`);
    entry(dot({ fill: CCW }), `${DATA.labels[0]} side`);
    entry(dot({ fill: "white", stroke: "#222", "stroke-width": 2 }), "state goes on");
    entry(dot({ fill: "#222" }), "state the classifier reads");
    entry(dot({ r: 6.5, fill: "none", stroke: "#222", "stroke-width": 2.5 }), "this step");
    const diamond = { points: "13,3 18,8 13,13 8,8", fill: "#777" };
    entry((svg) => element("polygon", diamond, svg), "where the 8 noise-free squares end");
    const line = { x1: 2, x2: 24, y1: 8, y2: 8, stroke: "black", "stroke-width": 1.2 };
    entry((svg) => element("line", line, svg), "P(clockwise) = 0.5");
    const bar = element("span", {}, box);
    const svg = element("svg", { width: 170, height: 30 }, bar);
    DATA.bands.forEach((colour, k) => {
      const band = { x: 10 + 15 * k, y: 2, width: 15, height: 12, fill: colour };
      element("rect", { ...band, "fill-opacity": DATA.bandAlpha }, svg);
    });
    for (const p of [0, 0.5, 1]) {
      element("text", { x: 10 + 150 * p, y: 27, "text-anchor": "middle", class: "tick" }, svg, String(p));
    }
    bar.append(" P(clockwise)");
    if (bidirectional) {
      const note =
        "Direction panels: the boundary with the other direction held where the classifier reads it.";
      element("span", {}, box, note);
    }
  }

  /** Every layer and direction's states and gates, one column per point, the step's outlined;
   *  then P(clockwise) were the classifier to read the output at each point. */
  function stateTables(parts, variant, result, step, bidirectional) {
    const length = result.outputs.length;
    const layers = result.layers.length;
    const current = (t) => (t === step - 1 ? "current" : "");
    result.layers.forEach((runs, layer) => {
      runs.forEach((run, direction) => {
        const table = element("table", {}, parts.tables);
        const names = [layers > 1 ? `layer ${layer + 1} of ${layers}` : ""];
        if (bidirectional) {
          const reads = direction ? `reads ${length} → 1` : `reads 1 → ${length}`;
          names.push(`${DIRECTIONS[direction]} (${reads})`);
        }
        element("caption", {}, table, names.filter(Boolean).join(", ") || variant.arch.toUpperCase());
        const head = element("tr", {}, element("thead", {}, table));
        element("th", { scope: "col" }, head, "at point");
        for (let t = 0; t < length; t += 1) {
          element("th", { scope: "col", class: current(t) }, head, String(t + 1));
        }
        const body = element("tbody", {}, table);
        const rows = [["h", run.hidden, false]];
        if (run.cell) rows.push(["c", run.cell, false]);
        for (const [gate, values] of Object.entries(run.gates)) rows.push([`gate ${gate}`, values, true]);
        for (const [name, values, gate] of rows) {
          values[0].forEach((_, unit) => {
            const row = element("tr", {}, body);
            element("th", { scope: "row" }, row, `${name}[${unit}]`);
            values.forEach((value, t) => {
              // A gate's value shades its cell: how much it lets through.
              const shade = gate ? `background: rgba(42, 157, 143, ${(0.55 * value[unit]).toFixed(3)})` : "";
              element("td", { class: current(t), style: shade }, row, format(value[unit], 3));
            });
          });
        }
      });
    });
    const table = element("table", {}, parts.tables);
    element("caption", {}, table, "The classifier on the output at each point");
    const row = element("tr", {}, element("tbody", {}, table));
    element("th", { scope: "row" }, row, "P(clockwise) if read");
    result.outputs.forEach((output, t) => {
      element("td", { class: current(t) }, row, format(sigmoid(logitOf(variant, output)), 3));
    });
  }

  /** Bars of each filter's response to each pair, on a scale that holds every test square's,
   *  coloured by the way its weighted response pushes the logit. */
  function convFigure(parts, variant, result, step) {
    const { weight, bias } = variant.conv;
    const pairs = result.responses[0].length;
    const box = element("div", { class: "figure" }, parts.figures);
    const title =
      "each filter's response ReLU(filter · (point t, point t + 1) + bias) to each pair, up to " +
      "the largest on the test squares; under each, the classifier's weight";
    element("p", { class: "figure-title" }, box, title);
    const label = `${variant.name}: the filter's response to each pair of points`;
    const svg = element("svg", { role: "img", "aria-label": label }, box);
    const [left, top, height, slot] = [50, 10, 200, 130];
    const right = left + slot * pairs;
    svg.setAttribute("width", right + 10);
    svg.setAttribute("height", top + height + 44);
    const y = (value) => top + height - (Math.min(value, variant.scale) / variant.scale) * height;
    const tick = explorerDrawing.niceStep(variant.scale / 4);
    for (let v = 0; v <= variant.scale + 1e-9; v += tick) {
      element("line", { x1: left, x2: right, y1: y(v), y2: y(v), stroke: "#eee" }, svg);
      const at = { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" };
      element("text", at, svg, format(v, tick < 1 ? 1 : 0));
    }
    const weightOf = (c, t) => variant.classifier.weight[c * pairs + t];
    const barWidth = (slot - 40) / result.responses.length;
    result.responses.forEach((responses, c) => {
      responses.forEach((response, t) => {
        const x = left + slot * t + 20 + barWidth * c;
        const contribution = weightOf(c, t) * response;
        const shape = { x, y: y(response), width: barWidth - 4, height: top + height - y(response) };
        const paint = { fill: contribution > 0 ? CW : CCW, "fill-opacity": 0.75 };
        const outline = { stroke: t === step - 1 ? "#222" : "none", "stroke-width": 2.5 };
        const bar = element("rect", { ...shape, ...paint, ...outline }, svg);
        const said =
          `filter ${c + 1}, points ${t + 1} → ${t + 2}: response ${format(response, 3)}, weight ` +
          `${format(weightOf(c, t), 3)}, adds ${format(contribution, 3)} to the logit`;
        element("title", {}, bar, said);
        const above = { x: x + (barWidth - 4) / 2, y: y(response) - 4, "text-anchor": "middle" };
        element("text", above, svg, format(response, 2));
      });
    });
    for (let t = 0; t < pairs; t += 1) {
      const middle = left + slot * t + slot / 2;
      const weights = result.responses.map((_, c) => format(weightOf(c, t), 2)).join(", ");
      const weight = t === step - 1 ? "bold" : "normal";
      const name = { x: middle, y: top + height + 18, "text-anchor": "middle", "font-weight": weight };
      element("text", name, svg, `points ${t + 1} → ${t + 2}`);
      const under = { x: middle, y: top + height + 34, "text-anchor": "middle", class: "tick" };
      element("text", under, svg, `weight ${weights}`);
    }
    element("line", { x1: left, x2: right, y1: top + height, y2: top + height, stroke: "#222" }, svg);
    const table = element("table", {}, element("div", { class: "figure" }, parts.figures));
    element("caption", {}, table, "The filters (rows x, y; columns point t, point t + 1) and the logit");
    weight.forEach((kernel, c) => {
      const row = element("tr", {}, table);
      element("th", { scope: "row" }, row, `filter ${c + 1}`);
      element("td", {}, row, `x: ${format(kernel[0][0], 2)}, ${format(kernel[0][1], 2)}`);
      element("td", {}, row, `y: ${format(kernel[1][0], 2)}, ${format(kernel[1][1], 2)}`);
      element("td", {}, row, `bias ${format(bias[c], 2)}`);
    });
    const sum = element("tr", {}, table);
    element("th", { scope: "row" }, sum, "logit");
    const total = `${format(variant.classifier.bias, 2)} + Σ weight × response`;
    const logit = `${total} = ${format(result.logit, 3)}`;
    element("td", { colspan: "3" }, sum, logit);
    const item = element("span", {}, parts.legend);
    const key = element("svg", { width: 40, height: 14 }, item);
    element("rect", { x: 2, y: 2, width: 16, height: 10, fill: CW, "fill-opacity": 0.75 }, key);
    element("rect", { x: 22, y: 2, width: 16, height: 10, fill: CCW, "fill-opacity": 0.75 }, key);
    item.append(` the pair pushes towards ${DATA.labels[1]} (red) or ${DATA.labels[0]} (blue)`);
  }

  return { draw, stepsOf };
})();
