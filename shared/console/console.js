// The operator console. Plain JavaScript, no dependencies, no build step.
// Everything shown is set as text (textContent) or as a data:image URL: never as markup.
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("config").textContent);
  const reviewUrl = config.review_url || new URL("operator_review", window.location.href).href;
  const IMAGE = /^data:image\/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=]+$/;
  const LABELS = {
    pass: "Pass (p)", fail: "Fail (f)", execute: "Execute (e)", cancel: "Cancel it (c)",
    note: "Resolve with this note (n)", retry_refund: "Retry the refund", book_outside_payment: "Book a payment made outside Stripe",
    write_off: "Write off to platform losses",
  };
  const KEYS = { p: "pass", f: "fail", e: "execute", c: "cancel", n: "note" };
  const state = { token: sessionStorage.getItem("operator-token"), items: [], own: [], index: 0, open: null };

  const $ = (id) => document.getElementById(id);
  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function status(message, error) {
    $("status").textContent = message || "";
    $("status").className = error ? "error" : "";
  }
  function show(section) {
    for (const id of ["sign-in", "queue", "item"]) $(id).hidden = id !== section;
    $("sign-out").hidden = section === "sign-in";
  }
  function hours(value) {
    return value < 1 ? Math.round(value * 60) + " min" : value.toFixed(1) + " h";
  }
  function money(cents) {
    return cents === null || cents === undefined ? "" : "$" + (cents / 100).toFixed(2);
  }

  // -- Signing in: Supabase Auth's REST API, or a development token outside production ----------
  async function authCall(path, body) {
    const response = await fetch(config.supabase_url + "/auth/v1/" + path, {
      method: "POST",
      headers: { "Content-Type": "application/json", apikey: config.publishable_key || "" },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error_description || answer.msg || answer.message || "sign-in refused");
    return answer;
  }
  function signedIn(token) {
    state.token = token;
    sessionStorage.setItem("operator-token", token);
    loadQueue();
  }
  $("password-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    status("Signing in...");
    try {
      const answer = await authCall("token?grant_type=password", { email: $("email").value, password: $("password").value });
      signedIn(answer.access_token);
    } catch (error) {
      status(error.message, true);
    }
  });
  $("magic-link").addEventListener("click", async () => {
    try {
      // The link returns here (this URL must be among the project's Auth redirect URLs).
      const back = window.location.href.split("#")[0];
      await authCall("otp?redirect_to=" + encodeURIComponent(back), { email: $("email").value, create_user: false });
      status("A sign-in link is on its way to " + $("email").value + ".");
    } catch (error) {
      status(error.message, true);
    }
  });
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signedIn($("dev-token").value.trim());
  });
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem("operator-token");
    state.token = null;
    status("Signed out.");
    show("sign-in");
  });

  // -- operator_review --------------------------------------------------------------------------
  async function review(body) {
    const response = await fetch(reviewUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer " + state.token },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (response.status === 401) {
      sessionStorage.removeItem("operator-token");
      show("sign-in");
    }
    if (!response.ok) throw new Error((answer.error && answer.error.message) || "operator_review answered " + response.status);
    return answer;
  }

  async function loadQueue() {
    status("Loading the queue...");
    try {
      const answer = await review({ action: "list", limit: 200 });
      state.items = answer.items;
      state.own = answer.own_cases || [];
      state.index = Math.min(state.index, Math.max(state.items.length - 1, 0));
      renderQueue();
      status("");
    } catch (error) {
      status(error.message, true);
    }
  }

  function renderQueue() {
    show("queue");
    state.open = null;
    const body = $("items");
    body.replaceChildren();
    const overdue = state.items.filter((i) => i.overdue).length;
    $("counts").textContent = state.items.length + " open, " + overdue + " past the " + config.sla_hours + " h SLA";
    state.items.forEach((item, index) => {
      const row = el("tr");
      row.dataset.id = item.id;
      if (index === state.index) row.className = "current";
      const age = el("td", hours(item.age_hours) + " of " + item.sla_hours + " h", item.overdue ? "overdue" : "");
      row.append(age, el("td", item.kind), el("td", item.why), el("td", item.goal_title || item.stripe_object || ""),
        el("td", money(item.amount_cents)));
      row.addEventListener("click", () => { state.index = index; openItem(); });
      body.append(row);
    });
    const own = $("own");
    own.replaceChildren();
    for (const item of state.own) own.append(el("li", item.kind + " " + item.why + " (" + item.id + ")"));
    if (!state.own.length) own.append(el("li", "none"));
  }

  async function openItem() {
    const item = state.items[state.index];
    if (!item) return;
    status("Opening...");
    try {
      const detail = await review({ action: "show", kind: item.kind, id: item.id });
      state.open = detail;
      renderItem(detail);
      status("");
    } catch (error) {
      status(error.message, true);
    }
  }

  function facts(pairs) {
    const list = $("facts");
    list.replaceChildren();
    for (const [label, value] of pairs) {
      if (value === null || value === undefined || value === "") continue;
      list.append(el("dt", label), el("dd", typeof value === "object" ? JSON.stringify(value) : value));
    }
  }

  function proofSide(title, side) {
    const box = el("div", null, "side");
    box.append(el("h3", title));
    if (!side) { box.append(el("p", "nothing to show")); return box; }
    const meta = el("dl");
    for (const [label, value] of [["submitted", side.submitted_at], ["captured", side.captured_at], ["status", side.status],
      ["same user", side.same_user === null || side.same_user === undefined ? "" : side.same_user ? "yes" : "no"],
      ["description", side.description]]) {
      if (value) meta.append(el("dt", label), el("dd", value));
    }
    box.append(meta);
    if (side.unavailable) box.append(el("p", "The proof cannot be shown: " + side.unavailable, "overdue"));
    const proof = side.proof;
    if (proof) {
      box.append(el("p", proof.kind + ": " + proof.source));
      box.append(el("p", "SHA-256 " + proof.sha256, "hint"));
      for (const url of proof.images || []) {
        if (!IMAGE.test(url)) continue; // only image bytes, never a document
        const image = el("img");
        image.alt = "proof image";
        image.src = url;
        box.append(image);
      }
      if (proof.text) box.append(el("pre", proof.text, "proof-text"));
    }
    return box;
  }

  function table(title, rows, columns) {
    const wrap = el("div");
    wrap.append(el("h3", title));
    if (!rows || !rows.length) { wrap.append(el("p", "none")); return wrap; }
    const t = el("table");
    const head = el("tr");
    for (const c of columns) head.append(el("th", c));
    t.append(head);
    for (const row of rows) {
      const tr = el("tr");
      for (const c of columns) tr.append(el("td", typeof row[c] === "object" && row[c] !== null ? JSON.stringify(row[c]) : row[c]));
      t.append(tr);
    }
    wrap.append(t);
    return wrap;
  }

  function renderItem(detail) {
    show("item");
    const item = detail.item;
    $("item-title").textContent = item.kind + ": " + item.why;
    facts([
      ["waiting", hours(item.age_hours) + " (SLA " + item.sla_hours + " h)" + (item.overdue ? ", overdue" : "")],
      ["goal", item.goal_title], ["checkpoint", item.checkpoint_title], ["deadline", item.deadline],
      ["rubric", item.rubric], ["submitted", item.submitted_at], ["amount", money(item.amount_cents)],
      ["consequence", item.consequence_type], ["contest reason", item.contest_reason],
      ["kompromat", item.kompromat ? item.kompromat.type + ", " + item.kompromat.bytes + " bytes" : ""],
      ["Stripe object", item.stripe_object], ["Stripe says", money(item.stripe_cents)], ["ledger says", money(item.ledger_cents)],
      ["grader", item.findings ? item.findings.reason : ""],
      ["match", detail.match ? detail.match.check : ""],
      ["photo taken", detail.stale ? detail.stale.taken_at : ""], ["goal activated", detail.stale ? detail.stale.activated_at : ""],
    ]);
    const evidence = $("evidence");
    evidence.replaceChildren();
    if (item.kind === "submission") {
      evidence.append(proofSide("This proof", detail.proof));
      if (detail.earlier_proof) evidence.append(proofSide("Seen before", detail.earlier_proof));
    }
    const context = $("context");
    context.replaceChildren();
    if (detail.goal) context.append(table("Goal", [detail.goal], ["title", "status", "final_deadline", "stake_cents", "charity"]));
    if (detail.checkpoints) {
      context.append(table("Deadlines", detail.checkpoints.map((c) => ({ ...c, contested: c.contested ? "this one" : "" })),
        ["title", "deadline", "status", "stake_cents", "contested", "submissions"]));
    }
    if (detail.ledger_entries) context.append(table("Ledger", detail.ledger_entries, ["created_at", "type", "amount_cents", "available_delta", "reserved_delta", "reference"]));
    if (detail.stripe_movements) context.append(table("Stripe movements", detail.stripe_movements, ["created_at", "kind", "amount_cents", "fee_cents", "source_id"]));
    if (detail.stripe_objects) {
      const objects = detail.stripe_objects.map((o) => ({
        id: o.id, object: o.object ? o.object.object : "", amount: o.object ? o.object.amount : "",
        status: o.object ? o.object.status || "" : "", unavailable: o.unavailable || "",
      }));
      context.append(table("What Stripe says now", objects, ["id", "object", "amount", "status", "unavailable"]));
    }
    const actions = $("actions");
    actions.replaceChildren();
    for (const action of item.actions) {
      const button = el("button", LABELS[action] || action);
      button.type = "button";
      button.dataset.action = action;
      button.addEventListener("click", () => decide(action));
      actions.append(button);
    }
    $("keys").textContent = "Esc: queue; j/k: next/previous item. A decision needs a reason.";
    $("reason").value = "";
  }

  async function decide(action) {
    const item = state.open && state.open.item;
    if (!item || !item.actions.includes(action)) return;
    const reason = $("reason").value.trim();
    if (!reason) {
      status("A decision needs a reason.", true);
      $("reason").focus();
      return;
    }
    const body = item.kind === "submission" ? { action: "decide_submission", submission_id: item.id, decision: action, reason }
      : item.kind === "consequence" ? { action: "decide_consequence", consequence_id: item.id, decision: action, reason }
      : { action: "resolve_money", money_item_id: item.id, resolution: action, reason };
    status("Deciding...");
    try {
      const answer = await review(body);
      status("Decided: " + item.kind + " " + (answer.decided || action) + ", now " + answer.status + ".");
      const message = $("status").textContent;
      await loadQueue();
      status(message);
    } catch (error) {
      status(error.message, true);
    }
  }

  document.addEventListener("keydown", (event) => {
    if (event.target instanceof HTMLTextAreaElement || event.target instanceof HTMLInputElement) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (!$("queue").hidden) {
      if (event.key === "j") { state.index = Math.min(state.index + 1, state.items.length - 1); renderQueue(); }
      else if (event.key === "k") { state.index = Math.max(state.index - 1, 0); renderQueue(); }
      else if (event.key === "Enter") openItem();
      else if (event.key === "r") loadQueue();
    } else if (!$("item").hidden) {
      if (event.key === "Escape") renderQueue();
      else if (event.key === "j") { state.index = Math.min(state.index + 1, state.items.length - 1); openItem(); }
      else if (event.key === "k") { state.index = Math.max(state.index - 1, 0); openItem(); }
      else if (KEYS[event.key]) decide(KEYS[event.key]);
    }
  });
  $("back").addEventListener("click", renderQueue);
  $("next").addEventListener("click", () => { state.index = Math.min(state.index + 1, state.items.length - 1); openItem(); });
  $("prev").addEventListener("click", () => { state.index = Math.max(state.index - 1, 0); openItem(); });

  // A magic link comes back with the session in the fragment.
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  if (fragment.get("access_token")) {
    history.replaceState(null, "", window.location.pathname + window.location.search);
    signedIn(fragment.get("access_token"));
  } else if (state.token) {
    loadQueue();
  } else {
    show("sign-in");
  }
  $("token-form").hidden = !config.development_token;
})();
