/* Segment builder: a visual editor and the text form of one segment, kept in sync through the server.
 *
 * The visual editor holds a small model of the segment (groups and condition rows; segment-builder-model.js reads
 * and writes it as the segment's JSON AST, rapport.segments.codec version 1) and posts it to /segments/builder/preview, which
 * answers the canonical text (the printer), the count and a sample. Typing in the text box posts the text
 * instead; the server parses it and the answer's AST redraws the visual editor. Errors come back with a line
 * and column (text) or a JSON path (AST) and are shown where they are. No framework, no build step; the
 * page's CSP allows no inline script, so everything is wired here from data attributes.
 */
(function () {
  "use strict";

  var form = document.querySelector("form[data-segment-builder]");
  if (!form) return;
  var config = JSON.parse(document.getElementById(form.getAttribute("data-segment-builder")).textContent);
  var catalog = config.catalog;
  var visual = document.getElementById("seg-visual");
  var textarea = document.getElementById("seg-text");
  var mirror = document.getElementById("seg-text-mirror");
  var textError = document.getElementById("seg-text-error");
  var countEl = document.getElementById("seg-count");
  var countLabel = document.getElementById("seg-count-label");
  var sampleBody = document.getElementById("seg-sample");
  var elapsedEl = document.getElementById("seg-elapsed");
  var syncState = document.getElementById("seg-sync-state");
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var DEBOUNCE_MS = 300;

  var segmentModel = window.RapportSegmentModel(catalog);
  var fieldTypes = segmentModel.fieldTypes;
  var newGroup = segmentModel.newGroup;
  var newNode = segmentModel.newNode;
  var fromAst = segmentModel.fromAst;
  var toAst = segmentModel.toAst;
  var asGroup = segmentModel.asGroup;
  var isEmpty = segmentModel.isEmpty;
  var valueType = segmentModel.valueType;

  var KINDS = [
    ["field", "Customer field"],
    ["did", "Did an event"],
    ["event_time", "First or last time"],
    ["engagement", "Message engagement"],
    ["subscription", "Subscription"],
    ["in_segment", "In another segment"],
    ["within", "Location"],
    ["random_bucket", "Random bucket"]
  ];
  var OP_LABELS = {
    "=": "is (=)", "!=": "is not (≠)", ">": "more than (>)", ">=": "at least (≥)", "<": "less than (<)",
    "<=": "at most (≤)", "contains": "contains", "starts with": "starts with", "in": "is one of",
    "not in": "is none of", "is set": "is set", "is not set": "is not set", "is today": "is today",
    "in next": "in the next … days", "in last": "in the last … days", "more than ago": "more than … days ago",
    "less than ago": "less than … days ago"
  };
  var COMPARE_OPS = ["=", "!=", ">", ">=", "<", "<=", "contains", "starts with", "in", "not in"];
  var DATE_RELATIVE = window.RapportSegmentModel.DATE_RELATIVE;
  var VTYPES = [["string", "text"], ["number", "number"], ["boolean", "true / false"], ["date", "date"]];

  /* ---- rendering ------------------------------------------------------------------------------------- */

  function h(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") e.textContent = v;
      else if (k === "className") e.className = v;
      else e.setAttribute(k, v === true ? "" : v);
    });
    (children || []).forEach(function (c) { if (c) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }

  /* A labelled control bound to obj[key]; structural controls redraw the tree after a change. */
  function control(n, key, label, type, options, extra) {
    extra = extra || {};
    var obj = extra.obj || n;
    var id = "seg-" + n.id + "-" + (extra.idKey || key);
    var input;
    if (type === "select") {
      input = h("select", { id: id, name: id });
      options.forEach(function (o) {
        var value = Array.isArray(o) ? o[0] : o;
        var text = Array.isArray(o) ? o[1] : o;
        input.appendChild(h("option", { value: value, text: text, selected: String(obj[key]) === String(value) }));
      });
    } else if (type === "checkbox") {
      input = h("input", { type: "checkbox", id: id, name: id, checked: !!obj[key] });
    } else {
      input = h("input", {
        type: type, id: id, name: id, value: obj[key], list: extra.list || null, step: type === "number" ? "any" : null,
        min: extra.min, placeholder: extra.placeholder || null, autocomplete: "off", spellcheck: "false",
        inputmode: type === "number" ? "decimal" : null
      });
      if (type === "number") input.className = "seg-num";
    }
    if (extra.narrow) input.classList.add("seg-narrow");
    var read = function () { obj[key] = type === "checkbox" ? input.checked : input.value; };
    if (extra.onchange) {
      input.addEventListener("change", function () { extra.onchange(input.value); });
    } else if (extra.structural) {
      input.addEventListener("change", function () { read(); redraw(); changed(); });
    } else {
      input.addEventListener("input", function () { read(); changed(); });
      input.addEventListener("change", function () { read(); changed(); });
    }
    if (type === "checkbox") {
      return h("label", { className: "seg-check", for: id }, [input, " " + label]);
    }
    return h("div", { className: "seg-ctl" + (extra.wide ? " seg-ctl--wide" : "") }, [
      h("label", { for: id, text: label }), input
    ]);
  }

  function button(text, label, onClick, className) {
    var b = h("button", { type: "button", className: "button " + (className || "button--ghost") + " seg-btn", "aria-label": label || null }, [text]);
    b.addEventListener("click", onClick);
    return b;
  }

  function countControls(n) {
    return [
      control(n, "op", "How often", "select", [["at least", "at least"], ["at most", "at most"], ["exactly", "exactly"]], { obj: n.count, idKey: "count-op" }),
      control(n, "n", "Times", "number", null, { obj: n.count, idKey: "count-n", min: "0", narrow: true })
    ];
  }

  function windowControls(n) {
    var w = n.window;
    var out = [control(n, "kind", "When", "select", [["ever", "ever"], ["in last", "in the last"], ["between", "between dates"]], { obj: w, idKey: "win-kind", structural: true })];
    if (w.kind === "in last") {
      out.push(control(n, "amount", "Amount", "number", null, { obj: w, idKey: "win-amount", min: "1", narrow: true }));
      out.push(control(n, "unit", "Unit", "select", [["days", "days"], ["hours", "hours"]], { obj: w, idKey: "win-unit" }));
    } else if (w.kind === "between") {
      out.push(control(n, "start", "From", "date", null, { obj: w, idKey: "win-start" }));
      out.push(control(n, "end", "To", "date", null, { obj: w, idKey: "win-end" }));
    }
    return out;
  }

  function fieldOps(n) {
    if (n.kind === "prop") return COMPARE_OPS.concat(["is set", "is not set"]);
    var t = fieldTypes[n.field];
    var ops = t ? catalog.operators[t].slice() : COMPARE_OPS.slice();
    ops = ops.concat(["is set", "is not set"]);
    if (!t || t === "date") ops = ops.concat(DATE_RELATIVE);
    if (ops.indexOf(n.op) < 0) ops.push(n.op);
    return ops;
  }

  function fieldControls(n) {
    var out = [];
    // the operator and value controls depend on the field's type: they live in a display:contents span
    // that is redrawn alone, so a click elsewhere in the row is not lost to a redraw when the field blurs
    var dependent = h("span", { className: "seg-dep" }, valueControls(n));
    if (n.kind === "prop") {
      out.push(control(n, "field", "Property", "text", null, { placeholder: "e.g. amount", wide: true }));
    } else {
      var shownType = fieldTypes[n.field] || "";
      var fieldCtl = control(n, "field", "Field", "text", null, { list: "seg-dl-fields", placeholder: "pick or type a field", wide: true });
      fieldCtl.querySelector("input").addEventListener("change", function () {
        var now = fieldTypes[n.field] || "";
        if (now === shownType) return;
        shownType = now;
        // after focus has moved (Tab goes into the operator): redraw, then put the focus back by id
        setTimeout(function () {
          var active = document.activeElement;
          var inside = active && dependent.contains(active);
          var keep = inside ? active.id : null;
          // a keystroke may have moved the focus on before this runs (a slow machine): remember where
          var place = inside ? Array.prototype.indexOf.call(dependent.querySelectorAll("input, select"), active) : -1;
          dependent.textContent = "";
          valueControls(n).forEach(function (c) { dependent.appendChild(c); });
          var again = keep ? document.getElementById(keep) : null;
          if (!again && place >= 0) {
            // that control is gone (e.g. "Value type" once the field's type is known): take its place's
            var now = dependent.querySelectorAll("input, select");
            again = now.length ? now[Math.min(place, now.length - 1)] : null;
          }
          if (again) again.focus();
        }, 0);
      });
      out.push(fieldCtl);
    }
    out.push(dependent);
    return out;
  }

  function valueControls(n) {
    var out = [];
    out.push(control(n, "op", "Operator", "select", fieldOps(n).map(function (o) { return [o, OP_LABELS[o] || o]; }), { structural: true }));
    if (n.op === "is set" || n.op === "is not set" || n.op === "is today") {
      // no value
    } else if (DATE_RELATIVE.indexOf(n.op) >= 0) {
      out.push(control(n, "days", "Days", "number", null, { min: "0", narrow: true }));
    } else {
      var known = n.kind === "field" && fieldTypes[n.field] && fieldTypes[n.field] !== "list";
      var vt = valueType(n);
      if (!known) out.push(control(n, "vtype", "Value type", "select", VTYPES, { structural: true }));
      if (n.op === "in" || n.op === "not in") {
        out.push(control(n, "value", "Values (comma separated)", "text", null, { wide: true }));
      } else if (vt === "boolean") {
        if (n.value !== "true" && n.value !== "false") n.value = "true";
        out.push(control(n, "value", "Value", "select", [["true", "true"], ["false", "false"]]));
      } else {
        out.push(control(n, "value", "Value", vt === "number" ? "number" : vt === "date" ? "date" : "text", null, { wide: vt === "string" }));
      }
    }
    if (n.kind === "field" && DATE_RELATIVE.indexOf(n.op) >= 0 && n.op !== "more than ago" && n.op !== "less than ago") {
      out.push(control(n, "anniversary", "yearly (anniversary)", "checkbox"));
    }
    return out;
  }

  function eventControl(n) {
    return control(n, "event", "Event", "text", null, { list: "seg-dl-events", wide: true });
  }

  function whereBlock(n) {
    if (!n.where) {
      return button("+ Property filter", "Add a property filter to this event", function () {
        n.where = newGroup("and", [newNode("prop", true)]);
        redraw(); changed();
      });
    }
    var box = h("div", { className: "seg-where" }, [h("p", { className: "seg-where__label", text: "where" })]);
    box.appendChild(renderGroup(n.where, false, true, function () { n.where = null; }));
    return box;
  }

  function kindControls(n) {
    if (n.kind === "field" || n.kind === "prop") return fieldControls(n);
    if (n.kind === "did") return [eventControl(n)].concat(countControls(n), windowControls(n));
    if (n.kind === "event_time") {
      var out = [
        control(n, "which", "Which", "select", [["first", "first time"], ["last", "last time"]]),
        eventControl(n),
        control(n, "when", "When", "select", [["before", "before date"], ["after", "after date"], ["more than ago", "more than … days ago"], ["less than ago", "less than … days ago"]], { structural: true })
      ];
      if (n.when === "before" || n.when === "after") out.push(control(n, "date", "Date", "date"));
      else out.push(control(n, "days", "Days ago", "number", null, { min: "0", narrow: true }));
      return out;
    }
    if (n.kind === "engagement") {
      return [
        control(n, "channel", "Channel", "select", [["", "any channel"]].concat(catalog.channels.map(function (c) { return [c, c]; }))),
        control(n, "action", "Action", "select", catalog.actions),
        control(n, "campaign", "Campaign (optional)", "text", null, { list: "seg-dl-campaigns" })
      ].concat(countControls(n), windowControls(n));
    }
    if (n.kind === "subscription") {
      return [
        control(n, "state", "State", "select", [["subscribed", "subscribed to"], ["unsubscribed", "unsubscribed from"]]),
        control(n, "channel", "Channel", "select", catalog.channels),
        control(n, "topic", "Topic (optional)", "text", null, { list: "seg-dl-topics" })
      ];
    }
    if (n.kind === "in_segment") {
      return [control(n, "segment", "Segment", "text", null, { list: "seg-dl-segments", wide: true })];
    }
    if (n.kind === "within") {
      var parts = [
        control(n, "km", "Within km", "number", null, { min: "0", narrow: true }),
        control(n, "target", "Of", "select", [["store", "a store"], ["point", "a point"]], { structural: true })
      ];
      if (n.target === "store") parts.push(control(n, "store", "Store", "text", null, { list: "seg-dl-stores", wide: true }));
      else {
        parts.push(control(n, "lat", "Latitude", "number", null, { narrow: true }));
        parts.push(control(n, "lon", "Longitude", "number", null, { narrow: true }));
      }
      return parts;
    }
    return [
      control(n, "op", "Bucket", "select", ["<", "<=", ">", ">="]),
      control(n, "percent", "Percent", "number", null, { min: "0", narrow: true }),
      control(n, "seed", "Seed (optional)", "text")
    ];
  }

  function renderRow(n, siblings, inWhere) {
    var row = h("div", { className: "seg-row", role: "group", "aria-label": inWhere ? "Property filter" : "Condition", "data-kind": n.kind });
    n.el = row;
    row.segNode = n;
    var head = h("div", { className: "seg-row__controls" });
    if (!inWhere) {
      head.appendChild(control(n, "kind", "Condition", "select", KINDS, {
        idKey: "kind",
        onchange: function (kind) {
          var fresh = newNode(kind, false);
          fresh.negate = n.negate;
          siblings[siblings.indexOf(n)] = fresh;
          redraw(fresh.id + "-kind"); changed();
        }
      }));
    }
    kindControls(n).forEach(function (c) { head.appendChild(c); });
    head.appendChild(control(n, "negate", "not", "checkbox"));
    head.appendChild(button("Remove", inWhere ? "Remove this property filter" : "Remove this condition", function () {
      siblings.splice(siblings.indexOf(n), 1);
      redraw(); changed();
    }, "button--ghost seg-remove"));
    row.appendChild(head);
    if (n.kind === "did" || n.kind === "event_time") row.appendChild(whereBlock(n));
    row.appendChild(h("p", { className: "seg-row__error", role: "alert", "data-testid": "row-error" }));
    return row;
  }

  function renderGroup(g, isTop, inWhere, onRemove, siblings) {
    var box = h("div", { className: "seg-group" + (isTop ? " seg-group--top" : ""), role: "group", "aria-label": inWhere ? "Property filters" : (isTop ? "All conditions" : "Group of conditions") });
    g.el = box;
    var head = h("div", { className: "seg-group__head" }, [
      control(g, "op", inWhere ? "Match" : (isTop ? "People who match" : "Group: match"), "select", [["and", "all of these (and)"], ["or", "any of these (or)"]]),
      control(g, "negate", "not", "checkbox")
    ]);
    if (!isTop) {
      head.appendChild(button("Remove group", null, function () {
        if (siblings) siblings.splice(siblings.indexOf(g), 1); else onRemove();
        redraw(); changed();
      }, "button--ghost seg-remove"));
    }
    box.appendChild(head);
    var list = h("div", { className: "seg-group__items" });
    if (!g.items.length && isTop) {
      list.appendChild(h("p", { className: "muted seg-empty", text: "No conditions yet: add one to choose who is in the segment." }));
    }
    g.items.forEach(function (item) {
      list.appendChild(item.kind === "group" ? renderGroup(item, false, inWhere, null, g.items) : renderRow(item, g.items, inWhere));
    });
    box.appendChild(list);
    box.appendChild(h("p", { className: "seg-row__error", role: "alert", "data-testid": "row-error" }));
    var add = h("div", { className: "seg-group__add" }, [
      button(inWhere ? "+ Filter" : "+ Condition", inWhere ? "Add a property filter" : "Add a condition", function () {
        var fresh = newNode(inWhere ? "prop" : "field", inWhere);
        g.items.push(fresh);
        redraw(fresh.id + (inWhere ? "-field" : "-kind")); changed();
      }, "button--secondary"),
      button("+ Group", inWhere ? "Add a group of property filters" : "Add a group of conditions", function () {
        var fresh = newNode(inWhere ? "prop" : "field", inWhere);
        g.items.push(newGroup(g.op === "and" ? "or" : "and", [fresh]));
        redraw(fresh.id + (inWhere ? "-field" : "-kind")); changed();
      }, "button--ghost")
    ]);
    box.appendChild(add);
    return box;
  }

  function datalist(id, values, labels) {
    var dl = h("datalist", { id: id });
    values.forEach(function (v, i) { dl.appendChild(h("option", { value: v, label: labels ? labels[i] : null })); });
    return dl;
  }

  var model = newGroup("and", []);
  var lists = h("div", { hidden: true }, [
    datalist("seg-dl-fields", catalog.fields.map(function (f) { return f.name; }), catalog.fields.map(function (f) { return f.type + " · " + f.source; })),
    datalist("seg-dl-events", catalog.events),
    datalist("seg-dl-stores", catalog.stores),
    datalist("seg-dl-segments", catalog.segments),
    datalist("seg-dl-topics", catalog.topics),
    datalist("seg-dl-campaigns", catalog.campaigns)
  ]);

  function redraw(focusKey) {
    var active = document.activeElement;
    var keep = focusKey ? "seg-" + focusKey : (active && active.id && visual.contains(active) ? active.id : null);
    visual.textContent = "";
    visual.appendChild(renderGroup(model, true, false));
    visual.appendChild(lists);
    if (keep) {
      var again = document.getElementById(keep);
      if (again) again.focus();
    }
  }

  /* ---- talking to the server ------------------------------------------------------------------------- */

  var timer = null;
  var inflight = null;
  var seq = 0;
  var paths = {};

  function changed() { schedule("ast"); }

  var pending = null;
  var lastSource = null;

  function schedule(source) {
    if (timer) clearTimeout(timer);
    pending = source;
    setState("Updating…");
    timer = setTimeout(function () { timer = null; send(source); }, DEBOUNCE_MS);
  }

  function currentAst() {
    paths = {};
    if (isEmpty(model)) return "";
    return JSON.stringify({ version: 1, root: toAst(model, "root", paths) });
  }

  function send(source) {
    var body = new URLSearchParams();
    body.set("source", source);
    body.set("text", textarea.value);
    body.set("ast", source === "ast" ? currentAst() : "");
    if (inflight) inflight.abort();
    var controller = new AbortController();
    inflight = controller;
    seq += 1;
    var mine = seq;
    form.setAttribute("aria-busy", "true");
    return fetch("/segments/builder/preview", {
      method: "POST",
      body: body,
      headers: { "X-CSRF-Token": csrfMeta ? csrfMeta.content : "", "Accept": "application/json" },
      credentials: "same-origin",
      signal: controller.signal
    }).then(function (r) {
      if (!r.ok) throw new Error("the server answered " + r.status);
      return r.json();
    }).then(function (answer) {
      if (mine !== seq) return false;
      pending = null;
      lastSource = source;
      apply(answer, source);
      return !!answer.ok;
    }).catch(function (err) {
      if (err && err.name === "AbortError") return false;
      setState("Could not update: " + err.message + ". Reload the page.");
      return false;
    }).then(function (ok) {
      if (mine === seq) { form.removeAttribute("aria-busy"); inflight = null; }
      return ok;
    });
  }

  function apply(answer, source) {
    clearErrors();
    if (!answer.ok) {
      showError(answer.error, source);
      countEl.parentNode.classList.add("seg-count--stale");
      if (countEl.hasAttribute("data-count")) countLabel.textContent = "matched the last valid version";
      form.setAttribute("data-sync", "error");
      return;
    }
    countEl.parentNode.classList.remove("seg-count--stale");
    if (answer.empty) {
      if (source === "ast") { textarea.value = ""; paintMirror(null); }
      if (source === "text") { model = newGroup("and", []); redraw(); }
      countEl.textContent = "–";
      countLabel.textContent = "add a condition to see who matches";
      sampleBody.textContent = "";
      elapsedEl.textContent = "";
      setState("");
      form.setAttribute("data-sync", "empty");
      return;
    }
    if (source === "ast") {
      textarea.value = answer.text;
      paintMirror(null);
    } else {
      model = asTop(fromAst(answer.ast.root, false));
      redraw();
    }
    countEl.textContent = answer.count.toLocaleString("en-GB");
    countEl.setAttribute("data-count", String(answer.count));
    countLabel.textContent = answer.count === 1 ? "profile matches" : "profiles match";
    elapsedEl.textContent = "counted in " + answer.elapsed_ms + " ms";
    renderSample(answer.sample);
    setState(source === "ast" ? "Text updated" : "Visual editor updated");
    form.setAttribute("data-sync", "ok");
  }

  function asTop(node) {
    if (node.kind === "group" && !node.negate) return node;
    return newGroup("and", [node]);
  }

  function renderSample(rows) {
    sampleBody.textContent = "";
    if (!rows.length) {
      sampleBody.appendChild(h("tr", {}, [h("td", { colspan: "4", className: "muted", text: "Nobody matches right now." })]));
      return;
    }
    rows.forEach(function (p) {
      sampleBody.appendChild(h("tr", {}, [
        h("td", { className: "nowrap" }, [h("a", { href: "/customers/" + encodeURIComponent(p.id), text: "#" + p.id })]),
        h("td", { text: p.name || "" }),
        h("td", { text: p.email || "" }),
        h("td", { className: "nowrap", text: p.phone || "" })
      ]));
    });
  }

  function setState(text) { syncState.textContent = text; }

  /* ---- errors where they are ------------------------------------------------------------------------- */

  function clearErrors() {
    textError.textContent = "";
    textarea.removeAttribute("aria-invalid");
    paintMirror(null);
    Array.prototype.forEach.call(visual.querySelectorAll(".seg-row__error"), function (p) { p.textContent = ""; });
    Array.prototype.forEach.call(visual.querySelectorAll(".has-error"), function (e) { e.classList.remove("has-error"); });
  }

  function showError(error, source) {
    if (source === "text" || error.line) {
      textarea.setAttribute("aria-invalid", "true");
      var where = error.line ? "Line " + error.line + ", column " + error.column + ": " : "";
      textError.appendChild(h("p", { className: "seg-error__message", "data-testid": "text-error-message" }, [where + error.reason]));
      if (error.line) {
        var span = tokenSpan(textarea.value, error.line, error.column);
        paintMirror(span);
        var line = textarea.value.split("\n")[error.line - 1] || "";
        textError.appendChild(h("pre", { className: "seg-error__source", "aria-hidden": "true" }, [line + "\n" + " ".repeat(Math.max(0, error.column - 1)) + "^"]));
        textError.appendChild(button("Show in text", "Show the error in the text", function () {
          textarea.focus();
          textarea.setSelectionRange(span[0], span[1]);
        }));
        if (error.suggestion) textError.appendChild(suggestion(error, span));
      } else if (error.suggestion) {
        textError.appendChild(h("p", { className: "seg-error__hint", text: "Did you mean “" + error.suggestion + "”?" }));
      }
      setState("The text has an error; the visual editor shows the last valid version.");
      return;
    }
    var target = elementFor(error.path);
    var slot = target ? target.querySelector(".seg-row__error") : null;
    if (target) target.classList.add("has-error");
    var text = error.message.replace(/^root[^:]*: /, "");
    if (slot) {
      slot.textContent = text;
      var fix = target.segNode ? fixFor(target.segNode, error) : null;
      if (fix) {
        slot.appendChild(document.createTextNode(" "));
        slot.appendChild(button("Use “" + error.suggestion + "”", null, function () {
          fix();
          redraw(); changed();
        }, "button--secondary"));
      }
    } else {
      textError.appendChild(h("p", { className: "seg-error__message", text: text }));
    }
    setState("A condition needs fixing.");
  }

  function suggestion(error, span) {
    var token = textarea.value.slice(span[0], span[1]);
    var wrap = h("p", { className: "seg-error__hint", "data-testid": "suggestion" }, ["Did you mean “" + error.suggestion + "”? "]);
    var quoted = /^["']/.test(token);
    var replacement = quoted ? JSON.stringify(error.suggestion) : (/^[A-Za-z_][\w.]*$/.test(error.suggestion) ? error.suggestion : null);
    if (error.suggestion.indexOf(token + " ") === 0) replacement = null;
    if (replacement !== null && !(error.suggestion.indexOf(" ") >= 0 && !quoted && replacement === error.suggestion)) {
      wrap.appendChild(button("Use “" + error.suggestion + "”", null, function () {
        textarea.value = textarea.value.slice(0, span[0]) + replacement + textarea.value.slice(span[1]);
        textarea.focus();
        send("text");
      }, "button--secondary"));
    }
    return wrap;
  }

  /* For "unknown field/event/… 'x'" with a suggestion: a function that puts the suggestion in the row. */
  function fixFor(n, error) {
    if (!error.suggestion) return null;
    var m = /^unknown (field|event|store|segment|topic|campaign) /.exec(error.reason || "");
    if (!m) return null;
    var key = m[1];
    if (!(key in n)) return null;
    return function () { n[key] = error.suggestion; };
  }

  function elementFor(path) {
    var p = path || "";
    while (p) {
      if (paths[p]) return paths[p];
      var cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
      if (cut <= 0) break;
      p = p.slice(0, cut);
    }
    return paths.root || null;
  }

  /* [start, end) of the token at a 1-based line and column of the text. */
  function tokenSpan(text, line, column) {
    var lines = text.split("\n");
    var offset = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i += 1) offset += lines[i].length + 1;
    offset = Math.min(text.length, offset + Math.max(0, column - 1));
    var rest = text.slice(offset);
    var m = /^("(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|`[^`\n]*`?|[^\s()",]+|.)/.exec(rest);
    var len = m && m[0] ? m[0].length : 0;
    return [offset, offset + len];
  }

  function paintMirror(span) {
    mirror.textContent = "";
    if (!span) return;
    var text = textarea.value;
    mirror.appendChild(document.createTextNode(text.slice(0, span[0])));
    var token = text.slice(span[0], span[1]);
    mirror.appendChild(h("mark", { className: "seg-mark" }, [token || " "]));
    mirror.appendChild(document.createTextNode(text.slice(span[1]) + "\n"));
    mirror.scrollTop = textarea.scrollTop;
  }

  /* ---- wiring ---------------------------------------------------------------------------------------- */

  // Enter in a visual control updates at once instead of submitting the form
  visual.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target.tagName === "INPUT") {
      event.preventDefault();
      if (timer) { clearTimeout(timer); timer = null; }
      send("ast");
    }
  });
  textarea.addEventListener("input", function () { paintMirror(null); schedule("text"); });
  textarea.addEventListener("scroll", function () { mirror.scrollTop = textarea.scrollTop; });
  form.addEventListener("submit", function (event) {
    // the text box is what is saved: bring it up to date with the visual editor first
    if (pending === "ast") {
      event.preventDefault();
      if (timer) { clearTimeout(timer); timer = null; }
      send("ast").then(function (ok) { if (ok) form.submit(); });
      return;
    }
    if (form.getAttribute("data-sync") === "error" && lastSource === "ast") {
      event.preventDefault();
      setState("Fix the condition marked in the visual editor before saving.");
      return;
    }
    if (timer) { clearTimeout(timer); timer = null; }
  });

  if (config.ast && config.ast.root) model = asTop(fromAst(config.ast.root, false));
  redraw();
  form.classList.add("seg-form--live");
  if (textarea.value.trim()) send("text");
  else form.setAttribute("data-sync", "empty");
})();
