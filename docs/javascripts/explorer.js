// The explorer of docs/explorer.md: which input entries an output position
// reads, where they land in the column matrix, what col2im adds back, and the
// same products in the dilate-pad-rotate picture. Plain JavaScript, no
// dependencies; the arithmetic (Im2colExplorer.indexSets) is a pure function
// that the site's browser test compares with the library.
(function () {
  "use strict";

  function product(values) {
    return values.reduce(function (a, b) { return a * b; }, 1);
  }

  // Row-major flat index of a multi-index, and back.
  function flatten(index, sizes) {
    var flat = 0;
    for (var d = 0; d < sizes.length; d++) flat = flat * sizes[d] + index[d];
    return flat;
  }
  function unflatten(flat, sizes) {
    var index = new Array(sizes.length);
    for (var d = sizes.length - 1; d >= 0; d--) {
      index[d] = flat % sizes[d];
      flat = Math.floor(flat / sizes[d]);
    }
    return index;
  }

  // Checks one geometry and derives its sizes. Every field is a list with one
  // integer per spatial dimension; padding is the same before and after.
  function geometry(spec) {
    var dims = spec.size.length;
    var names = ["kernel", "stride", "padding", "dilation"];
    for (var i = 0; i < names.length; i++) {
      if (!spec[names[i]] || spec[names[i]].length !== dims) {
        throw new Error(names[i] + " needs " + dims + " values");
      }
    }
    var out = [], extent = [], leftover = [], mapSize = [];
    for (var d = 0; d < dims; d++) {
      var n = spec.size[d], k = spec.kernel[d], s = spec.stride[d];
      var p = spec.padding[d], dl = spec.dilation[d];
      if (n < 1 || k < 1 || s < 1 || p < 0 || dl < 1) throw new Error("sizes must be positive");
      extent.push(dl * (k - 1) + 1);
      var span = n + 2 * p - extent[d];
      if (span < 0) throw new Error("the kernel spans " + extent[d] + " > padded input " + (n + 2 * p));
      out.push(Math.floor(span / s) + 1);
      leftover.push(span % s);
      // The dilated gradient, padded by the kernel's extent minus one, plus the leftover rows.
      mapSize.push((out[d] - 1) * s + 1 + 2 * (extent[d] - 1) + leftover[d]);
    }
    return {
      dims: dims, size: spec.size.slice(), kernel: spec.kernel.slice(), stride: spec.stride.slice(),
      padding: spec.padding.slice(), dilation: spec.dilation.slice(), channels: spec.channels || 1,
      output: out, extent: extent, leftover: leftover, mapSize: mapSize,
    };
  }

  // For geometry g:
  //   columns[r][o]  the flat input index (channel, spatial) that im2col copies into row r,
  //                  column o, or -1 where the window reads padding;
  //   scatter[i]     the [row, column] entries col2im adds into input index i;
  //   direct[i]      the terms of formula (8) at input index i: kernel row (channel and
  //                  offset, as in the column matrix), output position, the rotated kernel's
  //                  tap (flat, per channel) and the cell of the padded, dilated gradient.
  function indexSets(spec) {
    var g = spec.output ? spec : geometry(spec);
    var taps = product(g.kernel), positions = product(g.output), inputs = product(g.size);
    var rows = g.channels * taps, d, c;
    var columns = [], scatter = [], direct = [];
    for (var i = 0; i < g.channels * inputs; i++) { scatter.push([]); direct.push([]); }

    // im2col: window o, offset k reads padded position o*s + k*dl, input position minus p.
    for (var r = 0; r < rows; r++) {
      c = Math.floor(r / taps);
      var k = unflatten(r % taps, g.kernel);
      var row = [];
      for (var o = 0; o < positions; o++) {
        var q = unflatten(o, g.output), at = [], inside = true;
        for (d = 0; d < g.dims; d++) {
          at.push(q[d] * g.stride[d] + k[d] * g.dilation[d] - g.padding[d]);
          if (at[d] < 0 || at[d] >= g.size[d]) inside = false;
        }
        var input = inside ? c * inputs + flatten(at, g.size) : -1;
        row.push(input);
        if (inside) scatter[input].push([r, o]);
      }
      columns.push(row);
    }

    // Formula (8), as the correlation walks it: input position u of the padded input
    // meets rotated tap m at cell u + m*dl of the padded map; the cell holds a gradient
    // entry when it minus (extent - 1) is a multiple of the stride inside the output.
    for (var flat = 0; flat < inputs; flat++) {
      var pos = unflatten(flat, g.size);
      for (var m = 0; m < taps; m++) {
        var tap = unflatten(m, g.kernel), cell = [], out = [], hit = true;
        for (d = 0; d < g.dims; d++) {
          cell.push(pos[d] + g.padding[d] + tap[d] * g.dilation[d]);
          var t = cell[d] - (g.extent[d] - 1);
          if (t < 0 || t % g.stride[d] !== 0 || t / g.stride[d] >= g.output[d]) hit = false;
          out.push(t / g.stride[d]);
        }
        if (!hit) continue;
        // The rotated kernel's tap m is the kernel's offset K - 1 - m.
        var original = [];
        for (d = 0; d < g.dims; d++) original.push(g.kernel[d] - 1 - tap[d]);
        for (c = 0; c < g.channels; c++) {
          direct[c * inputs + flat].push({
            row: c * taps + flatten(original, g.kernel),
            column: flatten(out, g.output),
            tap: m,
            cell: flatten(cell, g.mapSize),
          });
        }
      }
    }
    return {
      output: g.output.slice(), mapSize: g.mapSize.slice(), rows: rows, positions: positions,
      columns: columns, scatter: scatter, direct: direct,
    };
  }

  window.Im2colExplorer = { geometry: geometry, indexSets: indexSets, flatten: flatten, unflatten: unflatten };

  // ---- The page: controls, grids, highlights. ----

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A 1-D or 2-D grid of cells; cellOf(index) returns [label, attributes].
  function grid(shape, cellOf) {
    var rows = shape.length === 2 ? shape[0] : 1, cols = shape[shape.length - 1];
    var table = element("div", "ex-grid");
    table.style.gridTemplateColumns = "repeat(" + cols + ", var(--ex-cell))";
    for (var i = 0; i < rows; i++) {
      for (var j = 0; j < cols; j++) {
        var spec = cellOf(shape.length === 2 ? [i, j] : [j]);
        var cell = element("span", "ex-cell", spec[0]);
        for (var name in spec[1]) cell.setAttribute(name, spec[1][name]);
        table.appendChild(cell);
      }
    }
    return table;
  }

  function panel(title, note) {
    var box = element("figure", "ex-panel");
    box.appendChild(element("figcaption", "", title));
    if (note) box.appendChild(element("p", "ex-note", note));
    return box;
  }

  function readControls(root) {
    var dims = Number(root.querySelector("[name=dims]").value);
    function pair(name) {
      var values = [];
      for (var d = 0; d < dims; d++) values.push(Number(root.querySelector("[name=" + name + d + "]").value));
      return values;
    }
    root.querySelectorAll("[data-dim='1']").forEach(function (node) { node.hidden = dims < 2; });
    return {
      size: pair("size"), kernel: pair("kernel"), stride: pair("stride"), padding: pair("padding"),
      dilation: pair("dilation"), channels: Number(root.querySelector("[name=channels]").value),
    };
  }

  function label(index) {
    return "(" + index.join(",") + ")";
  }

  function draw(root) {
    var view = root.querySelector(".ex-view");
    var status = root.querySelector(".ex-status");
    view.textContent = "";
    var g, sets;
    try {
      g = geometry(readControls(root));
      sets = indexSets(g);
    } catch (error) {
      status.textContent = error.message;
      return;
    }
    var inputs = product(g.size);
    status.textContent = "output " + g.output.join("\u00d7") + ", column matrix " + sets.rows + "\u00d7" +
      sets.positions + " (rows: channel, then kernel offset; columns: output positions, row-major)";

    var padded = g.size.map(function (n, d) { return n + 2 * g.padding[d]; });
    var input = panel("input x, padded (grey: padding zeros)");
    for (var c = 0; c < g.channels; c++) {
      if (g.channels > 1) input.appendChild(element("div", "ex-sub", "channel " + c));
      input.appendChild(grid(padded, function (at) {
        var real = at.map(function (v, d) { return v - g.padding[d]; });
        var inside = real.every(function (v, d) { return v >= 0 && v < g.size[d]; });
        if (!inside) return ["\u00b7", { "data-kind": "pad", "data-at": label(real), "data-channel": c }];
        var index = c * inputs + flatten(real, g.size);
        return [String(index), { "data-kind": "input", "data-index": index, title: "x" + label([c].concat(real)) }];
      }));
    }
    var output = panel("output positions");
    output.appendChild(grid(g.output, function (at) {
      var o = flatten(at, g.output);
      return [String(o), { "data-kind": "output", "data-index": o, title: "output " + label(at) }];
    }));
    var cols = panel("column matrix", "entry: the input index it holds (\u00b7 for padding)");
    cols.appendChild(grid([sets.rows, sets.positions], function (at) {
      var v = sets.columns[at[0]][at[1]];
      return [v < 0 ? "\u00b7" : String(v), { "data-kind": "col", "data-row": at[0], "data-col": at[1] }];
    }));
    var map = panel("dilated, padded output gradient", "the number is the output position it holds");
    var owner = {};
    for (var o = 0; o < sets.positions; o++) {
      var q = unflatten(o, g.output);
      owner[flatten(q.map(function (v, d) { return v * g.stride[d] + g.extent[d] - 1; }), g.mapSize)] = o;
    }
    map.appendChild(grid(g.mapSize, function (at) {
      var cell = flatten(at, g.mapSize);
      var text = cell in owner ? String(owner[cell]) : "";
      return [text, { "data-kind": "map", "data-index": cell, "class": "ex-cell" + (text ? " ex-live" : "") }];
    }));
    var rot = panel("rotated kernel (taps " + g.dilation.join(",") + " apart on the map)", "the number is the kernel offset");
    rot.appendChild(grid(g.kernel, function (at) {
      var m = flatten(at, g.kernel);
      var original = at.map(function (v, d) { return g.kernel[d] - 1 - v; });
      return [String(flatten(original, g.kernel)), { "data-kind": "tap", "data-index": m }];
    }));
    [input, output, cols, map, rot].forEach(function (box) { view.appendChild(box); });
    root._sets = sets;
    root._geometry = g;
  }

  function clear(root) {
    root.querySelectorAll(".ex-hit, .ex-selected, .ex-window").forEach(function (node) {
      node.classList.remove("ex-hit", "ex-selected", "ex-window");
    });
  }

  function mark(root, selector, className) {
    root.querySelectorAll(selector).forEach(function (node) { node.classList.add(className || "ex-hit"); });
  }

  // Highlights what a cell is linked to; `explain` says it in words.
  function select(root, cell) {
    var sets = root._sets, g = root._geometry;
    if (!sets || !cell) return;
    clear(root);
    cell.classList.add("ex-selected");
    var kind = cell.getAttribute("data-kind"), text = "";
    var taps = product(g.kernel), inputs = product(g.size);
    var o, r, i;
    if (kind === "output" || kind === "col") {
      o = Number(cell.getAttribute(kind === "output" ? "data-index" : "data-col"));
      var rows = kind === "output" ? sets.columns.map(function (_, row) { return row; })
        : [Number(cell.getAttribute("data-row"))];
      rows.forEach(function (row) {
        var source = sets.columns[row][o];
        if (source >= 0) mark(root, "[data-kind=input][data-index='" + source + "']");
        else markPadding(root, g, row, o);
        mark(root, "[data-kind=col][data-row='" + row + "'][data-col='" + o + "']");
      });
      mark(root, "[data-kind=output][data-index='" + o + "']");
      markOutputCell(root, g, o);
      if (kind === "col") {
        r = rows[0];
        mark(root, "[data-kind=tap][data-index='" + rotatedTap(g, r % taps) + "']");
        text = "column entry (" + r + ", " + o + "): kernel row " + r + " of window " + o + ", holds " +
          (sets.columns[r][o] < 0 ? "a padding zero" : "x index " + sets.columns[r][o]);
      } else {
        text = "output " + o + " reads column " + o + ": " + sets.columns.map(function (row) {
          return row[o] < 0 ? "pad" : row[o];
        }).join(", ");
      }
    } else if (kind === "input") {
      i = Number(cell.getAttribute("data-index"));
      sets.scatter[i].forEach(function (entry) {
        mark(root, "[data-kind=col][data-row='" + entry[0] + "'][data-col='" + entry[1] + "']");
        mark(root, "[data-kind=output][data-index='" + entry[1] + "']");
      });
      var spatial = i % inputs;
      var start = unflatten(spatial, g.size).map(function (v, d) { return v + g.padding[d]; });
      for (var m = 0; m < taps; m++) {
        var t = unflatten(m, g.kernel).map(function (v, d) { return start[d] + v * g.dilation[d]; });
        mark(root, "[data-kind=map][data-index='" + flatten(t, g.mapSize) + "']", "ex-window");
      }
      sets.direct[i].forEach(function (term) {
        mark(root, "[data-kind=map][data-index='" + term.cell + "']");
        mark(root, "[data-kind=tap][data-index='" + term.tap + "']");
      });
      text = "col2im adds " + sets.scatter[i].length + " entries into x index " + i + ": " +
        sets.scatter[i].map(function (e) { return "(" + e[0] + ", " + e[1] + ")"; }).join(" ") +
        "; formula (8) meets the same " + sets.direct[i].length + " (offset, output) pairs";
    }
    root.querySelector(".ex-explain").textContent = text;
  }

  function rotatedTap(g, k) {
    var at = unflatten(k, g.kernel).map(function (v, d) { return g.kernel[d] - 1 - v; });
    return flatten(at, g.kernel);
  }

  function markOutputCell(root, g, o) {
    var q = unflatten(o, g.output).map(function (v, d) { return v * g.stride[d] + g.extent[d] - 1; });
    root.querySelectorAll("[data-kind=map]").forEach(function (n) { n.classList.remove("ex-hit"); });
    mark(root, "[data-kind=map][data-index='" + flatten(q, g.mapSize) + "']");
  }

  function markPadding(root, g, row, o) {
    var c = Math.floor(row / product(g.kernel));
    var k = unflatten(row % product(g.kernel), g.kernel), q = unflatten(o, g.output);
    var at = q.map(function (v, d) { return v * g.stride[d] + k[d] * g.dilation[d] - g.padding[d]; });
    mark(root, "[data-kind=pad][data-channel='" + c + "'][data-at='" + label(at) + "']");
  }

  function start(root) {
    root.addEventListener("input", function () { draw(root); });
    root.addEventListener("change", function () { draw(root); });
    function pick(event) {
      var cell = event.target.closest("[data-kind]");
      if (cell && cell.getAttribute("data-kind") !== "pad") select(root, cell);
    }
    root.addEventListener("click", pick);
    root.addEventListener("mouseover", function (event) {
      if (root.querySelector(".ex-sticky:checked")) return;
      pick(event);
    });
    draw(root);
  }

  function boot() {
    document.querySelectorAll(".im2col-explorer").forEach(function (root) {
      if (!root._started) { root._started = true; start(root); }
    });
  }
  // Material's instant navigation swaps pages without a reload.
  if (typeof document$ !== "undefined" && document$.subscribe) document$.subscribe(boot);
  else if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
