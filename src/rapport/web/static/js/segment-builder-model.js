/* The segment builder's model: groups and condition rows as plain objects, read from and written to the
 * segment's JSON AST (rapport.segments.codec, version 1). No DOM here; segment-builder.js draws the model and
 * keeps each node's element in ``node.el`` so that toAst can map JSON paths to rows for error messages.
 *
 *   var M = RapportSegmentModel(catalog);            // catalog: what the workspace's segments may name
 *   var top = M.fromAst(document.root, false);       // the model of a tree
 *   var paths = {};
 *   var root = M.toAst(top, "root", paths);          // the tree again; paths["root.items[1]"] = that row's el
 */
(function (global) {
  "use strict";

  var DATE_RELATIVE = ["is today", "in next", "in last", "more than ago", "less than ago"];

  function RapportSegmentModel(catalog) {
    var fieldTypes = {};
    catalog.fields.forEach(function (f) { fieldTypes[f.name] = f.type; });

    var uid = 0;
    function nextId() { uid += 1; return uid; }

    /* ---- the model ------------------------------------------------------------------------------------- */

    function newGroup(op, items) { return { kind: "group", id: nextId(), op: op || "and", negate: false, items: items || [] }; }

    function newNode(kind, inWhere) {
      var n = { kind: kind, id: nextId(), negate: false };
      var count = { op: "at least", n: "1" };
      var win = { kind: "ever", amount: "30", unit: "days", start: "", end: "" };
      if (kind === "field" || kind === "prop") {
        n.field = ""; n.op = "="; n.value = ""; n.vtype = "string"; n.days = "30"; n.anniversary = false;
        n.inWhere = !!inWhere;
      } else if (kind === "did") {
        n.event = defaultEvent(); n.count = count; n.window = win; n.where = null;
      } else if (kind === "event_time") {
        n.which = "last"; n.event = defaultEvent(); n.when = "more than ago";
        n.date = ""; n.days = "30"; n.where = null;
      } else if (kind === "engagement") {
        n.channel = "email"; n.action = "opened"; n.campaign = ""; n.count = count; n.window = win;
      } else if (kind === "subscription") {
        n.state = "subscribed"; n.channel = "email"; n.topic = "";
      } else if (kind === "in_segment") {
        n.segment = firstOf(catalog.segments, "");
      } else if (kind === "within") {
        n.km = "5"; n.target = catalog.stores.length ? "store" : "point"; n.store = firstOf(catalog.stores, "");
        n.lat = ""; n.lon = "";
      } else if (kind === "random_bucket") {
        n.op = "<"; n.percent = "10"; n.seed = "";
      }
      return n;
    }

    function firstOf(list, fallback) { return list && list.length ? list[0] : fallback; }

    /* The event a new event row starts with: the first verb's (purchased → order_completed) when known. */
    function defaultEvent() {
      var verbs = Object.keys(catalog.verbs).map(function (v) { return catalog.verbs[v]; });
      for (var i = 0; i < verbs.length; i += 1) {
        if (!catalog.events.length || catalog.events.indexOf(verbs[i]) >= 0) return verbs[i];
      }
      return firstOf(catalog.events, "order_completed");
    }

    function scalarType(v) {
      if (v !== null && typeof v === "object" && "date" in v) return "date";
      if (typeof v === "number") return "number";
      if (typeof v === "boolean") return "boolean";
      return "string";
    }

    function scalarText(v) {
      if (v !== null && typeof v === "object" && "date" in v) return v.date;
      return String(v);
    }

    function windowOf(w) {
      var out = { kind: "ever", amount: "30", unit: "days", start: "", end: "" };
      if (!w) return out;
      out.kind = w.kind;
      if (w.kind === "in last") { out.amount = String(w.amount); out.unit = w.unit || "days"; }
      if (w.kind === "between") { out.start = w.start; out.end = w.end; }
      return out;
    }

    function fromAst(node, inWhere) {
      var t = node.type;
      if (t === "and" || t === "or") {
        return newGroup(t, node.items.map(function (i) { return fromAst(i, inWhere); }));
      }
      if (t === "not") {
        var inner = fromAst(node.item, inWhere);
        if (!inner.negate) { inner.negate = true; return inner; }
        var wrap = newGroup("and", [inner]);
        wrap.negate = true;
        return wrap;
      }
      var n;
      if (t === "compare" || t === "is_set" || t === "date_relative") {
        n = newNode(inWhere ? "prop" : "field", inWhere);
        n.field = node.field;
        if (t === "is_set") {
          n.op = node.is_set === false ? "is not set" : "is set";
        } else if (t === "date_relative") {
          n.op = node.kind === "today" ? "is today" : node.kind;
          n.days = String(node.days || 0);
          n.anniversary = !!node.anniversary;
        } else {
          n.op = node.op;
          var values = Array.isArray(node.value) ? node.value : [node.value];
          n.vtype = values.length ? scalarType(values[0]) : "string";
          n.value = values.map(scalarText).join(", ");
        }
        return n;
      }
      n = newNode(t, inWhere);
      if (t === "did") {
        n.event = node.event;
        n.count = { op: node.count ? node.count.op : "at least", n: String(node.count ? node.count.n : 1) };
        n.window = windowOf(node.window);
        n.where = node.where ? asGroup(fromAst(node.where, true)) : null;
      } else if (t === "event_time") {
        n.which = node.which; n.event = node.event;
        n.where = node.where ? asGroup(fromAst(node.where, true)) : null;
        if (node.point && "days_ago" in node.point) {
          n.when = node.op === "before" ? "more than ago" : "less than ago"; n.days = String(node.point.days_ago);
        } else {
          n.when = node.op; n.date = node.point ? node.point.date : "";
        }
      } else if (t === "engagement") {
        n.channel = node.channel || ""; n.action = node.action; n.campaign = node.campaign || "";
        n.count = { op: node.count ? node.count.op : "at least", n: String(node.count ? node.count.n : 1) };
        n.window = windowOf(node.window);
      } else if (t === "subscription") {
        n.state = node.state || "subscribed"; n.channel = node.channel; n.topic = node.topic || "";
      } else if (t === "in_segment") {
        n.segment = node.segment;
      } else if (t === "within") {
        n.km = String(node.km);
        if ("store" in node.target) { n.target = "store"; n.store = node.target.store; }
        else { n.target = "point"; n.lat = String(node.target.lat); n.lon = String(node.target.lon); }
      } else if (t === "random_bucket") {
        n.op = node.op; n.percent = String(node.percent); n.seed = node.seed || "";
      }
      return n;
    }

    function asGroup(node) { return node.kind === "group" ? node : newGroup("and", [node]); }

    function num(text) {
      var s = String(text).trim();
      if (s === "") return s;
      var v = Number(s);
      return isFinite(v) ? v : s;
    }

    function encodeValue(raw, vtype) {
      if (vtype === "number") return num(raw);
      if (vtype === "boolean") return String(raw).trim() === "true";
      if (vtype === "date") return { date: String(raw).trim() };
      return raw;
    }

    function valueType(n) {
      if (n.kind === "field" && fieldTypes[n.field]) {
        var t = fieldTypes[n.field];
        if (t === "list") return n.vtype === "number" ? "number" : "string";
        return t;
      }
      return n.vtype;
    }

    function encodeWindow(w) {
      if (w.kind === "in last") return { kind: "in last", amount: num(w.amount), unit: w.unit };
      if (w.kind === "between") return { kind: "between", start: w.start, end: w.end };
      return { kind: "ever" };
    }

    function isEmpty(n) {
      return n.kind === "group" && n.items.every(isEmpty);
    }

    /* Serialise the model as AST JSON; paths[path] = the element that shows that node's errors. */
    function toAst(n, path, paths) {
      if (n.negate) {
        paths[path] = n.el;
        return { type: "not", item: core(n, path + ".item", paths) };
      }
      return core(n, path, paths);
    }

    function core(n, path, paths) {
      paths[path] = n.el;
      if (n.kind === "group") {
        var items = n.items.filter(function (i) { return !isEmpty(i); });
        if (items.length === 1) return toAst(items[0], path, paths);
        return {
          type: n.op,
          items: items.map(function (item, i) { return toAst(item, path + ".items[" + i + "]", paths); })
        };
      }
      if (n.kind === "field" || n.kind === "prop") {
        if (n.op === "is set" || n.op === "is not set") return { type: "is_set", field: n.field, is_set: n.op === "is set" };
        if (DATE_RELATIVE.indexOf(n.op) >= 0) {
          return {
            type: "date_relative", field: n.field, kind: n.op === "is today" ? "today" : n.op,
            days: n.op === "is today" ? 0 : num(n.days), anniversary: !!n.anniversary
          };
        }
        var vt = valueType(n);
        var value = n.op === "in" || n.op === "not in"
          ? splitList(n.value).map(function (v) { return encodeValue(v, vt); })
          : encodeValue(n.value, vt);
        return { type: "compare", field: n.field, op: n.op, value: value };
      }
      if (n.kind === "did") {
        return {
          type: "did", event: n.event, where: whereAst(n, path, paths),
          count: { op: n.count.op, n: num(n.count.n) }, window: encodeWindow(n.window)
        };
      }
      if (n.kind === "event_time") {
        var daysAgo = n.when === "more than ago" || n.when === "less than ago";
        return {
          type: "event_time", which: n.which, event: n.event, where: whereAst(n, path, paths),
          op: n.when === "before" || n.when === "more than ago" ? "before" : "after",
          point: daysAgo ? { days_ago: num(n.days) } : { date: n.date }
        };
      }
      if (n.kind === "engagement") {
        return {
          type: "engagement", channel: n.channel || null, action: n.action, campaign: n.campaign.trim() || null,
          count: { op: n.count.op, n: num(n.count.n) }, window: encodeWindow(n.window)
        };
      }
      if (n.kind === "subscription") {
        return { type: "subscription", channel: n.channel, state: n.state, topic: n.topic.trim() || null };
      }
      if (n.kind === "in_segment") return { type: "in_segment", segment: n.segment };
      if (n.kind === "within") {
        var target = n.target === "store" ? { store: n.store } : { lat: num(n.lat), lon: num(n.lon) };
        return { type: "within", km: num(n.km), target: target };
      }
      return { type: "random_bucket", op: n.op, percent: num(n.percent), seed: n.seed.trim() || null };
    }

    function whereAst(n, path, paths) {
      if (!n.where || isEmpty(n.where)) return null;
      return toAst(n.where, path + ".where", paths);
    }

    function splitList(text) {
      return String(text).split(",").map(function (s) { return s.trim(); }).filter(function (s) { return s !== ""; });
    }


    return {
      fieldTypes: fieldTypes,
      newGroup: newGroup,
      newNode: newNode,
      fromAst: fromAst,
      toAst: toAst,
      asGroup: asGroup,
      isEmpty: isEmpty,
      valueType: valueType
    };
  }

  RapportSegmentModel.DATE_RELATIVE = DATE_RELATIVE;
  global.RapportSegmentModel = RapportSegmentModel;
})(window);
