// The judgelm page: plain DOM, no build step. Every text from the judge or the user is set with
// textContent (never parsed as HTML). API calls send the key as a Bearer header; streamed
// answers are NDJSON lines read from fetch's body.
"use strict";

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
};
const fmt = (x, digits = 2) => (x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(digits));
const num = (x) => String(Number(x)); // shortest exact form, for data-value attributes

const state = { info: null, key: sessionStorage.getItem("judgelm-key") || "", conversation: null, job: null };

// ---- the API -------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(message, field, status) {
    super(field ? `${field}: ${message}` : message);
    this.field = field;
    this.status = status;
  }
}

async function api(path, body) {
  const headers = {};
  if (state.key) headers.Authorization = `Bearer ${state.key}`;
  const init = { method: body === undefined ? "GET" : "POST", headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.ok) return response;
  let message = `HTTP ${response.status}`;
  let field = null;
  try {
    const data = await response.json();
    message = data.error?.message || message;
    field = data.error?.field || null;
  } catch (_) { /* not JSON */ }
  if (response.status === 401) $("key-box").hidden = false;
  throw new ApiError(message, field, response.status);
}

// Calls onEvent for each NDJSON line as it arrives; an {"event": "error"} line throws.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    let cut;
    while ((cut = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, cut).trim();
      buffer = buffer.slice(cut + 1);
      if (!line) continue;
      const event = JSON.parse(line);
      if (event.event === "error") throw new ApiError(event.message, event.field, 200);
      onEvent(event);
    }
    if (done) return;
  }
}

function showError(box, error) {
  box.textContent = error ? error.message : "";
  box.hidden = !error;
}

// ---- the judge form --------------------------------------------------------------------------
const ANSWER_COUNTS = { pairwise: [2, 2], image_pairwise: [2, 2], single: [1, 1], image_single: [1, 1], multi: [3, 16] };
const LETTERS = "ABCDEFGHIJKLMNOP";
const mode = () => $("mode").value;

function answerBoxes() {
  return [...$("answers").querySelectorAll("textarea")];
}

function renumberAnswers() {
  answerBoxes().forEach((box, i) => {
    box.dataset.testid = `answer-${i + 1}`;
    box.previousSibling.textContent = `Answer ${i + 1} (${LETTERS[i]})`;
    box.parentElement.querySelector("button").dataset.testid = `remove-answer-${i + 1}`;
  });
}

function addAnswer(text = "") {
  const box = el("textarea", { rows: "3" });
  box.value = text;
  const remove = el("button", { type: "button", class: "small remove", title: "remove this answer", text: "×" });
  remove.addEventListener("click", () => {
    if (answerBoxes().length <= 2) return;
    remove.parentElement.remove();
    if (mode() === "multi" && answerBoxes().length === 2) $("mode").value = "pairwise";
    syncMode();
  });
  $("answers").append(el("label", { class: "answer" }, el("span", { text: "" }), box, remove));
  renumberAnswers();
}

function addRound(user = "", a = "", b = "") {
  const k = $("rounds").children.length + 1;
  const field = (testid, label, value) => {
    const box = el("textarea", { rows: "2", "data-testid": testid });
    box.value = value;
    return el("label", { class: `turn who-${testid.split("-")[1]}` }, el("span", { text: label }), box);
  };
  $("rounds").append(el("div", { class: "round" },
    field(`chat-user-${k}`, `User, turn ${k}`, user),
    field(`chat-1-${k}`, "Assistant 1", a),
    field(`chat-2-${k}`, "Assistant 2", b)));
}

function syncMode() {
  const m = mode();
  const chat = m === "chat";
  const image = m.startsWith("image_");
  const [min, max] = ANSWER_COUNTS[m] || [0, 0];
  while (!chat && answerBoxes().length < min) addAnswer();
  while (!chat && answerBoxes().length > Math.max(min, m === "multi" ? 16 : min)) answerBoxes().at(-1).parentElement.remove();
  renumberAnswers();
  $("answers").hidden = chat;
  $("chat-box").hidden = !chat;
  $("images-box").hidden = !image;
  $("gold-box").hidden = !(m === "single" || m === "image_single");
  $("question").closest("label").hidden = chat;
  $("add-answer").hidden = chat || !(m === "pairwise" || m === "multi") || answerBoxes().length >= max && m === "multi";
  for (const b of $("answers").querySelectorAll("button.remove")) b.hidden = m !== "multi";
  if (chat && $("rounds").children.length === 0) addRound();
}

async function imagesBase64() {
  const files = [...$("images").files];
  return Promise.all(files.map((file) => new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  })));
}

function chatConversations() {
  const rounds = [...$("rounds").children];
  const conv = (k) => rounds.flatMap((round, i) => [
    { role: "user", content: round.querySelector(`[data-testid="chat-user-${i + 1}"]`).value },
    { role: "assistant", content: round.querySelector(`[data-testid="chat-${k}-${i + 1}"]`).value },
  ]);
  return [conv(1), conv(2)];
}

async function judgeForm() {
  const m = mode();
  const sample = { mode: m };
  if (m === "chat") sample.conversations = chatConversations();
  else {
    sample.question = $("question").value;
    sample.answers = answerBoxes().map((b) => b.value);
  }
  const reference = $("reference").value;
  if (reference.trim()) sample.reference = reference;
  if ((m === "single" || m === "image_single") && $("gold").value.trim()) sample.gold = $("gold").value;
  const options = { swap: $("swap").checked, explain: $("explain").checked, scoring: $("scoring").value };
  const tokens = parseInt($("max-new-tokens").value, 10);
  if (tokens > 0) options.max_new_tokens = tokens;
  const form = { sample, options };
  if (m.startsWith("image_")) form.images = await imagesBase64();
  return form;
}

// ---- the verdict -----------------------------------------------------------------------------
function candidateNames(v) {
  const n = (v.scores || v.distributions || []).length || (v.order_scores.find((s) => s) || []).length;
  return Array.from({ length: n }, (_, i) => (v.format === "chat" ? `Assistant ${i + 1}` : `Answer ${i + 1}`));
}

function headline(v, names) {
  if (v.abstained) return ["abstained", `Abstained (${v.reason_code})`];
  if (v.scores.length === 1) return ["graded", `Graded: ${fmt(v.scores[0])}`];
  if (v.winner === null) return ["tie", "Tie"];
  return [`winner-${v.winner + 1}`, `${names[v.winner]} is better`];
}

function distributionBars(d, k, mostLikely) {
  const top = Math.max(...d.probs, 1e-12);
  const bars = d.values.map((value, j) => {
    const p = d.probs[j];
    const bar = el("span", { class: "bar" + (value === mostLikely ? " mode" : ""), "data-score": num(value), "data-prob": num(p), title: `P(${value}) = ${fmt(p, 3)}` });
    bar.style.height = `${Math.max(1, (100 * p) / top)}%`;
    return el("span", { class: "col" }, el("span", { class: "slot" }, bar), el("span", { class: "tick", text: String(value) }));
  });
  return el("div", { class: "dist", "data-testid": `dist-${k}` }, ...bars);
}

function answerCard(v, names, i, mostLikely) {
  const k = i + 1;
  const d = v.distributions ? v.distributions[i] : null;
  const score = v.scores ? v.scores[i] : d ? d.expected : null;
  const card = el("div", { class: `card c${i % 6}` + (v.winner === i && !v.abstained ? " best" : ""), "data-testid": `answer-result-${k}` });
  card.append(el("div", { class: "name", text: names[i] }));
  const expected = el("span", { class: "score", "data-testid": `score-${k}`, text: fmt(score) });
  if (score !== null && score !== undefined) expected.dataset.value = num(score);
  card.append(el("div", { class: "numbers" },
    el("span", { class: "label", text: d ? "expected" : "score" }), expected,
    ...(d ? [el("span", { class: "label", text: "most likely" }),
      el("span", { class: "mode", "data-testid": `mode-${k}`, "data-value": num(mostLikely[i]), text: String(mostLikely[i]) })] : []),
    ...(v.rank1_probs ? [el("span", { class: "label", text: "P(best)" }),
      el("span", { "data-testid": `rank1-${k}`, "data-value": num(v.rank1_probs[i]), text: fmt(v.rank1_probs[i]) })] : [])));
  if (d) card.append(distributionBars(d, k, mostLikely[i]));
  return card;
}

function ordersTable(v, names) {
  const table = $("orders");
  table.replaceChildren();
  const orders = v.provenance.orders || [];
  table.hidden = orders.length < 2;
  if (table.hidden) return;
  table.append(el("tr", {}, el("th", { text: "order shown" }), ...names.map((n) => el("th", { text: n }))));
  orders.forEach((order, k) => {
    const shown = order.map((i) => LETTERS[i]).join(", ");
    const scores = v.order_scores[k];
    table.append(el("tr", { "data-testid": `order-${k + 1}` }, el("td", { text: `${k === 0 ? "as given" : "swapped"} (${shown})` }),
      ...names.map((_, i) => el("td", { text: scores ? fmt(scores[i]) : "unreadable" }))));
  });
}

// Why this winner: expected scores can be close or equal while the outcome probabilities differ.
function decidedBy(v, names) {
  if (v.abstained || v.scores.length < 2) return "";
  if (v.provenance.scoring !== "logits") return "decided by the scores the judge wrote";
  if (v.preference) {
    const p = v.preference;
    return `decided by the most probable outcome: P(A better) ${fmt(p.first, 3)}, P(tie) ${fmt(p.tie, 3)}, P(B better) ${fmt(p.second, 3)}`;
  }
  return `decided by P(best): ${v.rank1_probs.map((p, i) => `${names[i]} ${fmt(p, 3)}`).join(", ")}`;
}

function grammarText(v) {
  if (!v.distributions) return "–";
  const text = fmt(1 - v.distributions[0].outside_mass, 3);
  const threshold = state.info?.abstain_threshold;
  if (threshold === null || threshold === undefined) return text;
  return threshold >= 1 ? `${text} (this judge never abstains on it)` : `${text} (the judge abstains below ${fmt(1 - threshold)})`;
}

function calibrationText(v, calibrated) {
  if (v.provenance.scoring !== "logits") return "text scoring: scores parsed from the judge's text, no distributions";
  const cal = state.info?.calibration;
  if (!cal) return "none fitted: raw probabilities (judgelm calibrate fits a temperature)";
  return calibrated ? `temperature ${fmt(cal.temperature, 3)} applied` : `temperature ${fmt(cal.temperature, 3)} fitted, not applied`;
}

function showVerdict(event) {
  const v = event.verdict;
  const names = candidateNames(v);
  const [kind, text] = headline(v, names);
  const panel = $("verdict");
  panel.dataset.state = v.abstained ? "abstained" : "judged";
  $("winner").textContent = text;
  $("winner").dataset.value = v.abstained ? "abstained" : v.winner === null ? (v.scores.length === 1 ? "graded" : "tie") : String(v.winner + 1);
  $("winner").className = `winner ${kind}`;
  $("confidence").textContent = v.confidence === null ? "" : `confidence ${fmt(v.confidence)}`;
  if (v.confidence !== null) $("confidence").dataset.value = num(v.confidence);
  $("decided-by").textContent = decidedBy(v, names);
  $("abstain-reason").hidden = !v.abstained;
  $("abstain-reason").textContent = v.abstained ? `${v.reason_code}: ${v.reason}` : "";
  $("cards").replaceChildren(...names.map((_, i) => answerCard(v, names, i, event.most_likely || [])));
  const pref = v.preference;
  $("preference").hidden = !pref;
  if (pref) {
    const parts = [["first", pref.first], ["tie", pref.tie], ["second", pref.second]];
    $("pref-bar").replaceChildren(...parts.map(([k, p]) => {
      const seg = el("span", { class: `seg ${k}`, title: `${k}: ${fmt(p, 3)}` });
      seg.style.width = `${100 * p}%`;
      return seg;
    }));
    for (const [k, p] of parts) {
      $(`pref-${k}`).textContent = fmt(p);
      $(`pref-${k}`).dataset.value = num(p);
    }
  }
  $("calibration").textContent = calibrationText(v, event.calibrated);
  $("grammar").textContent = grammarText(v);
  const orders = (v.provenance.orders || []).length;
  const swap = $("swap-check");
  swap.dataset.value = v.consistent === null ? "off" : v.consistent ? "agree" : "disagree";
  swap.textContent = orders < 2 ? "off (one order judged)" : v.consistent === null ? "an order could not be read"
    : v.consistent ? `both orders agree (inconsistency ${fmt(v.inconsistency)})` : `the orders disagree (inconsistency ${fmt(v.inconsistency)})`;
  const trunc = v.provenance.truncation.length ? `, ${v.provenance.truncation.length} text(s) shortened` : "";
  $("provenance").textContent = `${v.format}, ${v.provenance.scoring}${v.provenance.with_reference ? ", with reference" : ""}${trunc}`;
  ordersTable(v, names);
  $("explanation").classList.remove("live");
  $("explanation").textContent = v.explanation || (event.explain ? "(no explanation after the score line)" : "(explain is off)");
  $("raw-text").textContent = v.text ?? "";
  state.conversation = event.conversation;
  $("why-history").replaceChildren();
  $("why-input").disabled = $("why-send").disabled = false;
}

async function onJudge(e) {
  e.preventDefault();
  const panel = $("verdict");
  showError($("error"), null);
  $("judge").disabled = true;
  $("busy").hidden = false;
  panel.dataset.state = "running";
  $("explanation").textContent = "";
  $("explanation").classList.add("live");
  $("why-input").disabled = $("why-send").disabled = true;
  try {
    const form = await judgeForm();
    const response = await api("/ui/api/judge", form);
    await readEvents(response, (event) => {
      if (event.event === "token" && event.order === 0) $("explanation").textContent += event.text;
      else if (event.event === "verdict") showVerdict({ ...event, explain: form.options.explain });
    });
  } catch (error) {
    panel.dataset.state = "error";
    showError($("error"), error);
  } finally {
    $("judge").disabled = false;
    $("busy").hidden = true;
  }
}

async function onWhy(e) {
  e.preventDefault();
  const message = $("why-input").value.trim();
  if (!message || !state.conversation) return;
  const history = $("why-history");
  history.querySelector('[data-testid="why-reply"]')?.removeAttribute("data-testid");
  history.append(el("div", { class: "turn user", text: message }));
  const reply = el("div", { class: "turn judge live", "data-testid": "why-reply", "data-state": "running" });
  history.append(reply);
  $("why-input").value = "";
  $("why-send").disabled = true;
  try {
    const response = await api("/ui/api/discuss", { conversation: state.conversation, message });
    await readEvents(response, (event) => {
      if (event.event === "token") reply.textContent += event.text;
      else if (event.event === "reply") {
        reply.textContent = event.text || "(the judge said nothing)";
        reply.dataset.state = "done";
      }
    });
  } catch (error) {
    reply.textContent = error.message;
    reply.dataset.state = "error";
  } finally {
    reply.classList.remove("live");
    $("why-send").disabled = false;
  }
}

// ---- the batch tab ---------------------------------------------------------------------------
function batchRow(row) {
  const cells = (...texts) => texts.map((t) => el("td", { text: t }));
  if (row.error) {
    const where = row.error.field ? `${row.error.field}: ` : "";
    return el("tr", { class: "bad", "data-testid": "batch-row", "data-key": row.key },
      ...cells(row.key, "–", "–", "error", "–", "", `${where}${row.error.message}`));
  }
  const v = row.verdict;
  const scores = v.scores ? v.scores.map((s) => fmt(s)).join("  ") : "–";
  const [, result] = headline(v, candidateNames(v));
  const swap = v.consistent === null ? "" : v.consistent ? "agree" : "disagree";
  const note = v.abstained ? v.reason : v.explanation || "";
  return el("tr", { class: v.abstained ? "abstained" : "", "data-testid": "batch-row", "data-key": row.key },
    ...cells(row.key, v.format, scores, result, v.confidence === null ? "–" : fmt(v.confidence), swap, note.slice(0, 120)));
}

async function download(kind) {
  const response = await api(`/ui/api/batch/${state.job}/${kind}`);
  const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "")?.[1] || kind;
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function onBatch(e) {
  e.preventDefault();
  const file = $("batch-file").files[0];
  const panel = $("batch");
  showError($("batch-error"), null);
  if (!file) return showError($("batch-error"), new Error("choose a JSONL file first"));
  const body = $("batch-table").tBodies[0];
  body.replaceChildren();
  $("batch-report").hidden = true;
  $("batch-download-results").disabled = $("batch-download-report").disabled = true;
  $("batch-run").disabled = true;
  panel.dataset.state = "running";
  const progress = $("batch-progress");
  const steps = [];
  try {
    const options = { swap: $("batch-swap").checked, explain: $("batch-explain").checked };
    const response = await api("/ui/api/batch", { jsonl: await file.text(), name: file.name, options });
    await readEvents(response, (event) => {
      if (event.event === "start" || event.event === "rows") {
        const done = event.done ?? event.bad;
        progress.max = event.total;
        progress.value = done;
        steps.push(done);
        progress.dataset.steps = steps.join(",");
        $("batch-status").textContent = `${done} / ${event.total}`;
        body.append(...event.rows.map(batchRow));
      } else if (event.event === "done") {
        state.job = event.job;
        $("batch-download-results").disabled = false;
        $("batch-download-report").disabled = !event.report;
        $("batch-report").textContent = event.report || "";
        $("batch-report").hidden = !event.report;
        $("batch-status").textContent += event.report ? " judged; evaluation report below" : " judged (no labels: no report)";
        panel.dataset.state = "done";
      }
    });
  } catch (error) {
    panel.dataset.state = "error";
    showError($("batch-error"), error);
  } finally {
    $("batch-run").disabled = false;
  }
}

// ---- start -----------------------------------------------------------------------------------
async function loadInfo() {
  try {
    state.info = await (await api("/ui/api/info")).json();
  } catch (error) {
    $("model").textContent = error.status === 401 ? "enter the API key" : error.message;
    return;
  }
  $("key-box").hidden = !state.key;
  const info = state.info;
  $("model").textContent = info.model;
  $("model").title = info.engine;
  for (const option of $("mode").options) {
    if (option.value.startsWith("image_") && !info.images) {
      option.disabled = true;
      option.textContent += " (needs a vision judge)";
    }
  }
  if (!info.logits) $("scoring").querySelector('option[value="logits"]').disabled = true;
  $("max-new-tokens").max = String(info.max_new_tokens);
  document.body.dataset.ready = "true";
}

function previewImages() {
  const box = $("image-previews");
  box.replaceChildren(...[...$("images").files].map((f) => el("img", { src: URL.createObjectURL(f), alt: f.name })));
}

document.addEventListener("DOMContentLoaded", () => {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => {
      for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t === tab);
      for (const page of document.querySelectorAll(".tab-page")) page.hidden = page.id !== `tab-${tab.dataset.tab}`;
    });
  }
  $("key-box").addEventListener("submit", (e) => {
    e.preventDefault();
    state.key = $("api-key").value.trim();
    sessionStorage.setItem("judgelm-key", state.key);
    loadInfo();
  });
  $("mode").addEventListener("change", syncMode);
  $("add-answer").addEventListener("click", () => {
    addAnswer();
    if (mode() === "pairwise") $("mode").value = "multi";
    syncMode();
  });
  $("add-turn").addEventListener("click", () => addRound());
  $("remove-turn").addEventListener("click", () => $("rounds").children.length > 1 && $("rounds").lastChild.remove());
  $("images").addEventListener("change", previewImages);
  $("judge-form").addEventListener("submit", onJudge);
  document.querySelector(".why-form").addEventListener("submit", onWhy);
  $("batch-form").addEventListener("submit", onBatch);
  $("batch-download-results").addEventListener("click", () => download("results.jsonl").catch((e) => showError($("batch-error"), e)));
  $("batch-download-report").addEventListener("click", () => download("report.md").catch((e) => showError($("batch-error"), e)));
  syncMode();
  loadInfo();
});
