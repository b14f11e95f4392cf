// The explorer's numbers (pipeline/pictures/explorer.py inlines this first): every trained
// variant's forward pass, written from the cells' equations (pipeline/library/cells.py), and what
// the page says of points it cannot read. No drawing here.
//
// The forward pass is float32, as the models compute: the weights are their float32 numbers, the
// points are rounded to float32 as the models read them, and every operation's result is rounded
// to float32 (Math.fround) in the order the library's cells and ATen's convolution compute. Exact
// arithmetic would not give the model's numbers: a trained RNN amplifies its own float32 rounding
// about thirtyfold in four steps, to some 5e-6.
"use strict";
const explorerNumbers = (() => {
  const DATA = JSON.parse(document.getElementById("explorer-data").textContent);
  const VARIANTS = new Map(DATA.variants.map((variant) => [variant.name, variant]));
  const MIN_POINTS = 2;
  const MAX_POINTS = DATA.corners.points.length;
  const LIMIT = DATA.inputLimit;

  const f32 = Math.fround;
  const sigmoid = (value) => f32(1 / f32(1 + f32(Math.exp(-value))));
  const tanh = (value) => f32(Math.tanh(value));
  const dot = (a, b) => a.reduce((sum, value, k) => f32(sum + f32(value * b[k])), 0);
  const affine = (weight, bias, x) => weight.map((row, k) => f32(dot(row, x) + bias[k]));
  const add = (a, b) => a.map((value, k) => f32(value + b[k]));
  const times = (a, b) => a.map((value, k) => f32(value * b[k]));
  const chunks = (values, count) => {
    const size = values.length / count;
    return Array.from({ length: count }, (_, k) => values.slice(k * size, (k + 1) * size));
  };

  const CELLS = {
    // h' = tanh(W_hh h + b_hh + W_ih x + b_ih)
    rnn(w, x, h) {
      const hidden = add(affine(w.weight_hh, w.bias_hh, h), affine(w.weight_ih, w.bias_ih, x));
      return { hidden: hidden.map(tanh), gates: {} };
    },
    // r, z = sigmoid(W_i. x + b_i. + W_h. h + b_h.); n = tanh(W_in x + b_in + r * (W_hn h + b_hn));
    // h' = (1 - z) * n + z * h
    gru(w, x, h) {
      const [xr, xz, xn] = chunks(affine(w.weight_ih, w.bias_ih, x), 3);
      const [hr, hz, hn] = chunks(affine(w.weight_hh, w.bias_hh, h), 3);
      const r = add(xr, hr).map(sigmoid);
      const z = add(xz, hz).map(sigmoid);
      const n = add(xn, times(r, hn)).map(tanh);
      const share = times(z.map((value) => f32(1 - value)), n);
      return { hidden: add(share, times(z, h)), gates: { r, z } };
    },
    // i, f, o = sigmoid(...), g = tanh(...); c' = f * c + i * g; h' = o * tanh(c')
    lstm(w, x, h, c) {
      const blocks = add(affine(w.weight_ih, w.bias_ih, x), affine(w.weight_hh, w.bias_hh, h));
      const [i, f, g, o] = chunks(blocks, 4);
      const input = i.map(sigmoid);
      const forget = f.map(sigmoid);
      const output = o.map(sigmoid);
      const cell = add(times(forget, c), times(input, g.map(tanh)));
      const hidden = times(output, cell.map(tanh));
      return { hidden, cell, gates: { i: input, f: forget, o: output } };
    },
  };

  /** One direction of one layer over inputs [L][F], from a zero state: each field [L][H]. */
  function unroll(kind, weights, inputs) {
    const zeros = weights.weight_hh[0].map(() => 0);
    let hidden = zeros;
    let cell = zeros;
    const run = { hidden: [], gates: {} };
    if (kind === "lstm") run.cell = [];
    for (const x of inputs) {
      const step = CELLS[kind](weights, x, hidden, cell);
      hidden = step.hidden;
      run.hidden.push(hidden);
      if (step.cell) {
        cell = step.cell;
        run.cell.push(cell);
      }
      for (const [gate, values] of Object.entries(step.gates)) {
        (run.gates[gate] ||= []).push(values);
      }
    }
    return run;
  }

  /** A run over the reversed points, turned back so that index t is point t. */
  function inTimeOrder(run) {
    const turned = { hidden: run.hidden.slice().reverse(), gates: {} };
    if (run.cell) turned.cell = run.cell.slice().reverse();
    for (const [gate, rows] of Object.entries(run.gates)) turned.gates[gate] = rows.slice().reverse();
    return turned;
  }

  const logitOf = (variant, features) =>
    f32(dot(variant.classifier.weight, features) + variant.classifier.bias);

  /** A recurrent variant over L points: L steps; a backward direction starts at the last point
   *  (what packing does; with no padding, what an unpacked layer does too). The classifier reads
   *  the last layer's output at the last point. */
  function scoreRecurrent(variant, points) {
    let inputs = points;
    const layers = [];
    for (const cells of variant.layers) {
      const runs = [unroll(variant.arch, cells[0], inputs)];
      if (cells.length === 2) {
        runs.push(inTimeOrder(unroll(variant.arch, cells[1], inputs.slice().reverse())));
      }
      layers.push(runs);
      inputs = inputs.map((_, t) => runs.flatMap((run) => run.hidden[t]));
    }
    const logit = logitOf(variant, inputs[inputs.length - 1]);
    return { probability: sigmoid(logit), logit, outputs: inputs, layers };
  }

  /** conv1d: each filter's ReLU response to each pair of consecutive points (summed as ATen's
   *  convolution sums: the bias, then each coordinate's two taps), then the linear classifier
   *  over them (filter-major, as flatten orders them). */
  function scoreConv(variant, points) {
    const { weight, bias } = variant.conv;
    const responses = weight.map((kernel, c) =>
      points.slice(1).map((next, t) => {
        const taps = kernel.flatMap(([now, then], f) => [now * points[t][f], then * next[f]]);
        return Math.max(0, taps.reduce((sum, product) => f32(sum + f32(product)), bias[c]));
      }),
    );
    const logit = logitOf(variant, responses.flat());
    return { probability: sigmoid(logit), logit, responses };
  }

  /** A number to `digits` decimals, never "-0.00". */
  function format(value, digits = 2) {
    const text = value.toFixed(digits);
    return /^-0\.?0*$/.test(text) ? text.slice(1) : text;
  }

  const pointText = ([x, y]) => `(${format(x)}, ${format(y)})`;

  /** Why these are not points at all, in a sentence, or "". */
  function shapeProblem(points) {
    const pair = (point) =>
      Array.isArray(point) && point.length === 2 && point.every(Number.isFinite);
    if (Array.isArray(points) && points.every(pair)) return "";
    return (
      "Each point needs two finite numbers, x and y, and points are separated by semicolons: " +
      "for example -1, -1; -1, 1; 1, 1."
    );
  }

  /** Why these points cannot be read, in a sentence, or "". */
  function problemWith(points) {
    const shape = shapeProblem(points);
    if (shape) return shape;
    const count = points.length;
    if (count === 0) {
      return "No points yet: click the plane to place the first one, or start from a noise-free square.";
    }
    if (count < MIN_POINTS) {
      return (
        "One point is not a square yet: place at least two (up to four), and every variant " +
        "reads them in order."
      );
    }
    if (count > MAX_POINTS) {
      return `A square has ${MAX_POINTS} corners: these ${count} points are ${count - MAX_POINTS} too many.`;
    }
    const outside = points.findIndex((point) => point.some((value) => Math.abs(value) > LIMIT));
    if (outside < 0) return "";
    return (
      `Point ${outside + 1} at ${pointText(points[outside])} lies outside the drawing plane ` +
      `(${-LIMIT} to ${LIMIT} each way); the variants learned from squares with corners at ±1. ` +
      "Move it inside."
    );
  }

  /** Why this variant cannot read points that are otherwise fine, or "". */
  function problemFor(variant, points) {
    if (variant.arch !== "conv1d" || points.length === variant.length) return "";
    return (
      `${variant.name} reads exactly ${variant.length} points: its classifier weighs the ` +
      `filter's response to each of the ${variant.length - 1} pairs.`
    );
  }

  /** The reading of `points` by variant `name` (see window.explorer in explorer.js). */
  function score(name, points) {
    const variant = VARIANTS.get(name);
    if (!variant) {
      throw new Error(`No variant ${name}; the page has ${[...VARIANTS.keys()].join(", ")}.`);
    }
    const problem = problemWith(points) || problemFor(variant, points);
    if (problem) throw new Error(problem);
    const inputs = points.map((point) => point.map(f32)); // the models read float32
    return variant.arch === "conv1d" ? scoreConv(variant, inputs) : scoreRecurrent(variant, inputs);
  }

  return {
    DATA,
    VARIANTS,
    MIN_POINTS,
    MAX_POINTS,
    LIMIT,
    sigmoid,
    logitOf,
    score,
    scoreRecurrent,
    shapeProblem,
    problemWith,
    problemFor,
    format,
    pointText,
  };
})();
