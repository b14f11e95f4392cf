// The explorer's page (pipeline/pictures/explorer.py inlines this last): the drawing plane and its
// controls, every variant's P(clockwise), and what happens inside the one selected.
//
// window.explorer, for a reader's console and the tests:
//   variants                 the variants' names, in the report's order
//   score(variant, points)   points [[x, y], ...] read in order -> for a recurrent variant
//                            {probability, logit, outputs, layers}: outputs[t] is what the last
//                            layer puts out at point t (both directions side by side), layers[l][d]
//                            holds direction d of layer l in time order (hidden[t], cell[t] for an
//                            LSTM, gates.r/z or i/f/o [t]); for conv1d {probability, logit,
//                            responses[c][t]}, ReLU of filter c on points t, t + 1. Throws an Error
//                            whose message is the page's own for points it cannot read.
//   setPoints(points)        places the points as if drawn; returns the page's message ("" if none)
//   select(variant), setStep(t) (1-based), state() ({points, variant, step, message})
"use strict";
(() => {
  const { DATA, VARIANTS, MAX_POINTS, LIMIT, score, shapeProblem, problemWith, problemFor } =
    explorerNumbers;
  const { format, pointText } = explorerNumbers;
  const { element, clamp, axesIn, frame } = explorerDrawing;
  const PLANE = { size: 330, limit: LIMIT, names: ["x", "y"] };
  /** Arrow keys move a focused point this far (with Shift: further); positions are rounded to
   *  the plane's hundredths. */
  const NUDGE = 0.05;
  const SHOVE = 0.25;
  const round = (value) => Math.round(value * 100) / 100;

  const state = { points: [], selected: -1, variant: DATA.variants[0].name, step: 1, note: "" };
  const parts = {};
  let dragging = -1;

  function build() {
    const main = document.getElementById("explorer");
    main.replaceChildren();
    const columns = element("div", { class: "columns" }, main);
    const input = element("section", { class: "input", "aria-labelledby": "input-heading" }, columns);
    element("h2", { id: "input-heading" }, input, "Your square");
    const planeLabel =
      "The drawing plane: click to add a point, drag a point to move it, right-click a point to delete it";
    const plane = { id: "plane", tabindex: "0", role: "group", "aria-label": planeLabel };
    parts.plane = element("svg", plane, input);
    const hint =
      "Click to add a point (two to four, read in the order placed), drag a point to move it, " +
      "right-click it (or click it and press Delete) to delete it. Keyboard: Tab to a point, the " +
      "arrow keys move it (Shift: further), Delete removes it; elsewhere, the left and right " +
      "arrow keys step through the reading.";
    element("p", { class: "hint" }, input, hint);
    const typed = "The points in reading order, x, y; x, y; … (edit, then press Enter):";
    element("label", { for: "points-text" }, input, typed);
    const textArea = { id: "points-text", rows: "2", spellcheck: "false", autocomplete: "off" };
    parts.text = element("textarea", textArea, input);

    const start = element("fieldset", {}, input);
    element("legend", {}, start, "Or start from a noise-free square, with noise");
    let row = element("div", { class: "row" }, start);
    element("label", { for: "square" }, row, "square");
    parts.square = element("select", { id: "square" }, row);
    for (const [index, square] of DATA.squares.entries()) {
      const turn = square.label ? "↻ clockwise" : "↺ counter-clockwise";
      element("option", { value: index }, parts.square, `${square.name.split("").join(" → ")}  ${turn}`);
    }
    row = element("div", { class: "row" }, start);
    element("label", { for: "noise" }, row, "noise");
    const slider = { id: "noise", type: "range", min: "0", max: "0.5", step: "0.01", value: DATA.noise };
    parts.noise = element("input", slider, row);
    parts.noiseText = element("output", { for: "noise" }, row);
    element("label", { for: "seed" }, row, "seed");
    const seed = { id: "seed", type: "number", min: "0", max: "999999", step: "1", value: "1" };
    parts.seed = element("input", seed, row);
    row = element("div", { class: "row" }, input);
    parts.draw = element("button", { type: "button" }, row, "Draw this square again");
    parts.clear = element("button", { type: "button" }, row, "Clear the points");
    const status = { class: "message", role: "status", "aria-live": "polite", id: "message" };
    parts.message = element("p", status, input);

    const inside = element("section", { class: "inside", "aria-labelledby": "verdicts-heading" }, columns);
    element("h2", { id: "verdicts-heading" }, inside, "What each variant says: P(clockwise)");
    parts.verdicts = element("div", { class: "verdicts" }, inside);
    parts.buttons = new Map();
    const share = (k) => `${(100 * k) / DATA.bands.length}%`;
    const stops = DATA.bands.map((colour, k) => `${colour} ${share(k)} ${share(k + 1)}`).join(", ");
    for (const variant of DATA.variants) {
      const accuracy = `test accuracy ${(100 * variant.accuracy).toFixed(1)}%`;
      const attributes = {
        type: "button",
        class: "verdict",
        "aria-pressed": "false",
        title: `${variant.description}; ${accuracy}`,
      };
      const button = element("button", attributes, parts.verdicts);
      element("span", { class: "name" }, button, variant.name);
      const gradient = `background: linear-gradient(to right, ${stops})`;
      const track = element("span", { class: "track", style: gradient }, button);
      const marker = element("span", { class: "marker" }, track);
      const value = element("span", { class: "value" }, button);
      button.addEventListener("click", () => select(variant.name));
      parts.buttons.set(variant.name, { button, marker, value });
    }
    parts.heading = element("h2", {}, inside);
    parts.note = element("p", { class: "note" }, inside);
    const stepper = element("div", { class: "stepper" }, inside);
    element("label", { for: "step" }, stepper, "step");
    const steps = { id: "step", type: "range", min: "1", max: "4", step: "1", value: "1" };
    parts.step = element("input", steps, stepper);
    parts.stepText = element("output", { for: "step" }, stepper);
    parts.figures = element("div", { class: "figures" }, inside);
    parts.legend = element("div", { class: "legend" }, inside);
    parts.tables = element("div", { class: "tables" }, inside);
    listen();
  }

  // ---------------------------------------------------------------------------------------------
  // Input: the mouse, the keyboard, the text field and the noise-free squares.

  /** The plane point under the pointer, kept on the plane. */
  function planePoint(event) {
    const box = parts.plane.getBoundingClientRect();
    const view = parts.view;
    const u = ((event.clientX - box.left - view.left) / view.size) * 2 * LIMIT - LIMIT;
    const v = LIMIT - ((event.clientY - box.top - view.top) / view.size) * 2 * LIMIT;
    return [round(clamp(u, LIMIT)), round(clamp(v, LIMIT))];
  }

  function pointAt(event) {
    const target = event.target.closest && event.target.closest(".point");
    return target ? Number(target.dataset.index) : -1;
  }

  function listen() {
    const plane = parts.plane;
    plane.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      let index = pointAt(event);
      if (index < 0) {
        if (state.points.length >= MAX_POINTS) {
          state.note =
            `A square has ${MAX_POINTS} corners and all ${MAX_POINTS} are placed: drag one, or ` +
            "right-click one to delete it first.";
          render();
          return;
        }
        state.points.push(planePoint(event));
        index = state.points.length - 1;
        state.step = state.points.length;
      }
      event.preventDefault();
      plane.focus({ preventScroll: true }); // selected, not focused: the arrow keys still step
      state.selected = index;
      state.note = "";
      dragging = index;
      plane.setPointerCapture(event.pointerId);
      render();
    });
    plane.addEventListener("pointermove", (event) => {
      if (dragging < 0) return;
      state.points[dragging] = planePoint(event);
      render();
    });
    const stop = () => {
      dragging = -1;
    };
    plane.addEventListener("pointerup", stop);
    plane.addEventListener("pointercancel", stop);
    plane.addEventListener("contextmenu", (event) => {
      event.preventDefault();
      const index = pointAt(event);
      if (index >= 0) remove(index);
    });
    plane.addEventListener("keydown", (event) => {
      const index = pointAt(event);
      if (index < 0) return;
      const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };
      if (event.key in moves) {
        const distance = event.shiftKey ? SHOVE : NUDGE;
        const [dx, dy] = moves[event.key];
        const [x, y] = state.points[index];
        const moved = [x + dx * distance, y + dy * distance];
        state.points[index] = moved.map((value) => round(clamp(value, LIMIT)));
        state.note = "";
        render(index);
      } else if (event.key === "Delete" || event.key === "Backspace") {
        remove(index);
      } else if (event.key === "Escape") {
        deselect();
      } else {
        return;
      }
      event.preventDefault();
      event.stopPropagation();
    });
    plane.addEventListener("focusin", (event) => {
      const index = pointAt(event);
      if (index >= 0 && index !== state.selected) {
        state.selected = index;
        render(index);
      }
    });
    document.addEventListener("keydown", (event) => {
      const typing = event.target.closest && event.target.closest("input, select, textarea");
      if (typing || event.altKey || event.ctrlKey || event.metaKey) return;
      const moves = { ArrowLeft: -1, ArrowRight: 1, Home: -Infinity, End: Infinity };
      if (event.key in moves) {
        setStep(state.step + moves[event.key]);
      } else if ((event.key === "Delete" || event.key === "Backspace") && state.selected >= 0) {
        remove(state.selected);
      } else if (event.key === "Escape" && state.selected >= 0) {
        deselect();
      } else {
        return;
      }
      event.preventDefault();
    });
    parts.text.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      readText();
    });
    parts.text.addEventListener("change", readText);
    for (const control of [parts.square, parts.noise, parts.seed]) {
      control.addEventListener("input", noisySquare);
    }
    parts.draw.addEventListener("click", noisySquare);
    parts.clear.addEventListener("click", () => setPoints([]));
    parts.step.addEventListener("input", () => setStep(Number(parts.step.value)));
  }

  function deselect() {
    state.selected = -1;
    parts.plane.focus();
    render();
  }

  function remove(index) {
    state.points.splice(index, 1);
    state.selected = -1;
    state.note = "";
    parts.plane.focus();
    render();
  }

  /** The text field's points: "x, y; x, y; ...", brackets allowed. */
  function readText() {
    const pieces = parts.text.value.split(";").map((piece) => piece.trim()).filter(Boolean);
    const numbers = (piece) => piece.replace(/[()[\]]/g, " ").split(/[\s,]+/).filter(Boolean).map(Number);
    setPoints(pieces.map(numbers));
  }

  /** Mulberry32: a small seeded generator (the page's own; NumPy's draws differ). */
  function generator(seed) {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  /** The chosen noise-free square plus Gaussian noise (Box-Muller) of the chosen size and seed. */
  function noisySquare() {
    const square = DATA.squares[Number(parts.square.value)];
    const noise = Number(parts.noise.value);
    const uniform = generator(Math.abs(Math.trunc(Number(parts.seed.value))) || 0);
    const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
    const noisy = (value) => round(clamp(value + noise * normal(), LIMIT));
    setPoints(square.points.map((corner) => corner.map(noisy)));
  }

  // ---------------------------------------------------------------------------------------------
  // What the page shows.

  /** Draw everything from `state`; with `focusPoint`, that point keeps the keyboard's focus. */
  function render(focusPoint = -1) {
    const points = state.points;
    const problem = problemWith(points);
    parts.noiseText.textContent = format(Number(parts.noise.value));
    if (document.activeElement !== parts.text) {
      parts.text.value = points.map(([x, y]) => `${format(x)}, ${format(y)}`).join("; ");
    }
    parts.message.textContent = state.note || problem;
    const results = new Map();
    for (const variant of DATA.variants) {
      const refusal = problem || problemFor(variant, points);
      results.set(variant.name, refusal ? { refusal } : score(variant.name, points));
    }
    for (const [name, { button, marker, value }] of parts.buttons) {
      const result = results.get(name);
      button.setAttribute("aria-pressed", String(name === state.variant));
      marker.hidden = Boolean(result.refusal);
      if (result.refusal) {
        value.textContent = problem ? "no square yet" : `needs ${VARIANTS.get(name).length} points`;
      } else {
        marker.style.left = `${100 * result.probability}%`;
        const turn = result.probability > 0.5 ? "↻ cw" : "↺ ccw";
        value.textContent = `${format(result.probability, 3)} ${turn}`;
      }
    }
    const variant = VARIANTS.get(state.variant);
    const result = results.get(state.variant);
    const steps = result.refusal ? 1 : explorerInside.stepsOf(variant, points);
    state.step = Math.max(1, Math.min(state.step, steps));
    parts.step.max = String(steps);
    parts.step.value = String(state.step);
    parts.step.disabled = steps < 2;
    drawPlane(focusPoint, variant.arch === "conv1d" && !result.refusal);
    explorerInside.draw(parts, variant, result, points, state.step);
  }

  /** The plane with the corners A-D, the points numbered and joined in reading order, the
   *  step's point (or, for conv1d, pair) highlighted. */
  function drawPlane(focusPoint, pairs) {
    const svg = parts.plane;
    svg.replaceChildren();
    const view = (parts.view = axesIn(svg, PLANE));
    for (let v = -LIMIT; v <= LIMIT; v += 0.5) {
      const stroke = v === 0 ? "#bbb" : "#eee";
      element("line", { x1: view.x(v), x2: view.x(v), y1: view.y(-LIMIT), y2: view.y(LIMIT), stroke }, svg);
      element("line", { x1: view.x(-LIMIT), x2: view.x(LIMIT), y1: view.y(v), y2: view.y(v), stroke }, svg);
    }
    frame(view);
    const corners = DATA.corners.points;
    const outline = corners.map(([u, v]) => `${view.x(u)},${view.y(v)}`).join(" ");
    element("polygon", { points: outline, fill: "none", stroke: "#aaa", "stroke-dasharray": "5 4" }, svg);
    corners.forEach(([u, v], k) => {
      const place = { x: view.x(u) + (u < 0 ? -16 : 8), y: view.y(v) + (v < 0 ? 18 : -8) };
      element("text", { ...place, "font-weight": "bold", fill: "#666" }, svg, DATA.corners.names[k]);
    });
    const arrowHead = {
      id: "arrow",
      viewBox: "0 0 10 10",
      refX: "10",
      refY: "5",
      markerUnits: "userSpaceOnUse", // the same head on a thin line and on the step's thick one
      markerWidth: "10",
      markerHeight: "10",
      orient: "auto",
    };
    const arrow = element("marker", arrowHead, element("defs", {}, svg));
    element("path", { d: "M0,0 L10,5 L0,10 z", fill: "#333" }, arrow);
    const points = state.points;
    const places = points.map(([u, v]) => [view.x(clamp(u, LIMIT)), view.y(clamp(v, LIMIT))]);
    places.slice(1).forEach((q, k) => {
      const p = places[k];
      const length = Math.hypot(q[0] - p[0], q[1] - p[1]) || 1;
      const [ux, uy] = [(q[0] - p[0]) / length, (q[1] - p[1]) / length];
      const ends = { x1: p[0] + 12 * ux, y1: p[1] + 12 * uy, x2: q[0] - 12 * ux, y2: q[1] - 12 * uy };
      const lit = pairs && k === state.step - 1;
      const stroke = { stroke: lit ? "#e9a23b" : "#333", "stroke-width": lit ? 5 : 1.5 };
      element("line", { ...ends, ...stroke, "marker-end": "url(#arrow)" }, svg);
    });
    const readable = !problemWith(points);
    places.forEach(([cx, cy], k) => {
      const current = readable && !pairs && k === state.step - 1;
      const group = element("g", {
        class: `point${k === state.selected ? " selected" : ""}`,
        tabindex: "0",
        "data-index": k,
        role: "button",
        "aria-label": `point ${k + 1} at ${pointText(points[k])}`,
      }, svg);
      const [fill, ink] = current ? ["#222", "white"] : ["white", "#222"];
      const body = { cx, cy, r: 11, class: "body", fill, stroke: "#222", "stroke-width": 2 };
      element("circle", body, group);
      const number = { x: cx, y: cy + 4, "text-anchor": "middle", "font-weight": "bold", style: `fill: ${ink}` };
      element("text", number, group, String(k + 1));
    });
    if (focusPoint >= 0 && focusPoint < places.length) {
      svg.querySelector(`.point[data-index="${focusPoint}"]`).focus();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The API (see the top of this file).

  /** Place `points` as if drawn; what is not points at all leaves the drawing as it was. */
  function setPoints(points) {
    state.note = shapeProblem(points);
    if (!state.note) {
      state.points = points.map((point) => point.slice());
      state.selected = -1;
      state.step = points.length;
    }
    render();
    return parts.message.textContent;
  }

  function select(name) {
    if (!VARIANTS.has(name)) {
      throw new Error(`No variant ${name}; the page has ${[...VARIANTS.keys()].join(", ")}.`);
    }
    state.variant = name;
    render();
  }

  function setStep(step) {
    state.step = step;
    render();
  }

  build();
  parts.square.value = String(DATA.squares.findIndex((square) => square.name === "ABCD"));
  noisySquare();
  window.explorer = {
    variants: DATA.variants.map((variant) => variant.name),
    score,
    setPoints,
    select,
    setStep,
    state: () => ({
      points: state.points.map((point) => point.slice()),
      variant: state.variant,
      step: state.step,
      message: parts.message.textContent,
    }),
  };
})();
