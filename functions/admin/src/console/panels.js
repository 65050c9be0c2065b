function say(text, ok) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.className = ok ? "ok" : "error";
}

async function call(method, path, body, extraHeaders) {
  const headers = Object.assign({}, extraHeaders || {});
  if (accessToken) headers["Authorization"] = "Bearer " + accessToken;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!response.ok) {
    const error = data && data.error ? data.error : { code: "http_" + response.status, message: text };
    const fields = error.fields ? " (" + Object.entries(error.fields).map(([k, v]) => k + ": " + v).join("; ") + ")" : "";
    throw new Error(error.code + ": " + error.message + fields);
  }
  return data;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function button(label, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (className) b.className = className;
  b.addEventListener("click", onClick);
  return b;
}

async function findUsers() {
  const params = new URLSearchParams({ limit: "50" });
  const q = document.getElementById("user-q").value.trim();
  const role = document.getElementById("user-role").value;
  const active = document.getElementById("user-active").value;
  if (q) params.set("q", q);
  if (role) params.set("role", role);
  if (active) params.set("is_active", active);
  const page = await call("GET", "/api/admin/users/?" + params.toString());
  const body = document.getElementById("users");
  body.replaceChildren();
  for (const user of page.items) {
    const row = document.createElement("tr");
    row.dataset.userId = user.id;
    row.dataset.username = user.username;
    cell(row, user.username);
    cell(row, user.email);
    cell(row, user.role);
    cell(row, user.is_active ? T("enabled") : T("disabled"), user.is_active ? "" : "disabled-user");
    cell(row, user.id, "muted");
    const actions = cell(row, "");
    const verb = user.is_active ? "disable" : "enable";
    actions.appendChild(button(verb === "disable" ? L("Disable", "停用") : L("Enable", "啟用"), verb === "disable" ? "danger" : "", async () => {
      const reason = document.getElementById("action-reason").value.trim();
      if (!reason) { say(L("give a reason first", "請先填寫原因"), false); return; }
      try {
        await call("POST", "/api/admin/users/" + user.id + "/" + verb + "/", { reason });
        say(user.username + L(" " + verb + "d", verb === "disable" ? " 已停用" : " 已啟用"), true);
        await findUsers();
        await loadAudit();
      } catch (e) { say(e.message, false); }
    }));
    if (user.role === "MEMBER") {
      actions.appendChild(button(L("Adjust…", "調整…"), "", () => {
        document.getElementById("adjust-member").value = user.id;
        document.getElementById("adjust-amount").focus();
      }));
    }
    body.appendChild(row);
  }
  if (page.items.length === 0) say(L("no user matches", "沒有符合的使用者"), false);
}

async function loadPayments() {
  const page = await call("GET", "/api/admin/payments/?limit=50");
  const body = document.getElementById("payments");
  body.replaceChildren();
  for (const payment of page.items) {
    const row = document.createElement("tr");
    row.dataset.tradeNo = payment.merchant_trade_no;
    cell(row, payment.merchant_trade_no);
    personCell(row, payment.member_id);
    cell(row, payment.amount + " TWD");
    cell(row, when(payment.created_at));
    cell(row, payment.last_gateway_message || "—");
    cell(row, "").appendChild(button(L("Reconcile now", "立即對帳"), "", async () => {
      try {
        const answer = await call("POST", "/api/admin/payments/" + payment.merchant_trade_no + "/reconcile/");
        say(payment.merchant_trade_no + ": " + answer.result + " (" + answer.payment.status + ")", true);
        await loadPayments();
        await loadAudit();
      } catch (e) { say(e.message, false); }
    }));
    body.appendChild(row);
  }
  await showNames();
}

async function loadRefunds() {
  const page = await call("GET", "/api/admin/refunds/?limit=50");
  const body = document.getElementById("refunds");
  body.replaceChildren();
  for (const refund of page.items) {
    const row = document.createElement("tr");
    row.dataset.refund = refund.id;
    row.dataset.state = refund.state;
    cell(row, refund.id, "muted");
    personCell(row, refund.member_id);
    cell(row, refund.state);
    cell(row, refund.twd + " TWD");
    cell(row, refund.refunded_twd + " TWD");
    cell(row, refund.manual_reference ? "by hand: " + refund.manual_reference : (refund.message || ""));
    const actions = cell(row, "");
    if (refund.state === "requested" || refund.state === "processing") {
      actions.appendChild(button(L("Retry now", "立即重試"), "", async () => {
        try {
          await call("POST", "/api/admin/refunds/" + encodeURIComponent(refund.id) + "/retry/");
          say(L("refund " + refund.id + " is due now", "退款 " + refund.id + " 將於下次排程處理"), true);
          await loadRefunds();
          await loadAudit();
        } catch (e) { say(e.message, false); }
      }));
      actions.appendChild(button(L("Close as paid by hand", "以人工轉帳結案"), "", async () => {
        const reference = document.getElementById("refund-reference").value.trim();
        if (!reference) { say(L("enter the bank transfer reference first", "請先填寫轉帳參考號碼"), false); return; }
        try {
          const closed = await call("POST", "/api/admin/refunds/" + encodeURIComponent(refund.id) + "/close/", { reference });
          say(L("refund " + closed.id + " closed: " + closed.refunded_twd + " TWD by hand", "退款 " + closed.id + " 已以人工轉帳結案：新臺幣 " + closed.refunded_twd + " 元"), true);
          await loadRefunds();
          await loadAudit();
        } catch (e) { say(e.message, false); }
      }));
    }
    body.appendChild(row);
  }
  await showNames();
}

async function loadFailedInvoices() {
  const page = await call("GET", "/api/admin/invoices/failed/?limit=50");
  const body = document.getElementById("failed-invoices");
  body.replaceChildren();
  for (const invoice of page.items) {
    const row = document.createElement("tr");
    row.dataset.relate = invoice.relate_number;
    cell(row, invoice.relate_number, "muted");
    personCell(row, invoice.member_id);
    cell(row, invoice.amount + " TWD");
    cell(row, invoice.failure || "");
    cell(row, String(invoice.attempts.length));
    const actions = cell(row, "");
    actions.appendChild(button(L("Retry", "重試"), "", async () => {
      try {
        await call("POST", "/api/admin/invoices/" + encodeURIComponent(invoice.relate_number) + "/retry/");
        say(L("invoice " + invoice.relate_number + " is due again", "發票 " + invoice.relate_number + " 將重新開立"), true);
        await loadFailedInvoices();
        await loadAudit();
      } catch (e) { say(e.message, false); }
    }));
    body.appendChild(row);
  }
  await showNames();
}

async function loadStatements() {
  const page = await call("GET", "/api/admin/settlements/?state=issued&limit=50");
  const body = document.getElementById("statements");
  body.replaceChildren();
  for (const statement of page.items) {
    const row = document.createElement("tr");
    row.dataset.statement = statement.id;
    cell(row, statement.id, "muted");
    personCell(row, statement.merchant_id);
    cell(row, statement.period);
    cell(row, String(statement.lines));
    cell(row, statement.gross_twd + " TWD");
    cell(row, statement.commission_twd + " TWD");
    cell(row, statement.net_twd + " TWD");
    const actions = cell(row, "");
    actions.appendChild(button(L("Mark paid", "標記已付款"), "", async () => {
      const reference = document.getElementById("transfer-reference").value.trim();
      if (!reference) { say(L("enter the bank transfer reference first", "請先填寫轉帳參考號碼"), false); return; }
      try {
        const paid = await call("POST", "/api/admin/settlements/" + encodeURIComponent(statement.id) + "/paid/", { reference });
        say(L("statement " + paid.id + " paid: " + paid.net_twd + " TWD, " + paid.reference, "對帳單 " + paid.id + " 已付款：新臺幣 " + paid.net_twd + " 元，" + paid.reference), true);
        await loadStatements();
        await loadAudit();
      } catch (e) { say(e.message, false); }
    }));
    actions.appendChild(button(L("Transfer failed", "轉帳失敗"), "danger", async () => {
      try {
        await call("POST", "/api/admin/settlements/" + encodeURIComponent(statement.id) + "/failed/");
        say(L("statement " + statement.id + " failed: its lines go to the next period", "對帳單 " + statement.id + " 轉帳失敗：明細移至下一期"), true);
        await loadStatements();
        await loadAudit();
      } catch (e) { say(e.message, false); }
    }));
    body.appendChild(row);
  }
  await showNames();
}

async function loadAudit() {
  const page = await call("GET", "/api/admin/audit/?limit=50");
  const body = document.getElementById("audit");
  body.replaceChildren();
  for (const entry of page.items) {
    const row = document.createElement("tr");
    row.dataset.action = entry.action;
    cell(row, when(entry.at));
    personCell(row, entry.admin_id);
    cell(row, entry.action);
    // `member:<id>`, `user:<id>`…: a person's id shown by name.
    const [kind, targetId] = entry.target.split(":");
    if (["user", "member", "merchant"].includes(kind) && targetId && USER_ID.test(targetId)) {
      personCell(row, targetId).dataset.prefix = kind + ": ";
    } else {
      cell(row, entry.target);
    }
    cell(row, changes(entry.before, entry.after));
    cell(row, entry.reason || "");
    body.appendChild(row);
  }
  await showNames();
}

document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const pair = await call("POST", "/api/auth/login/", {
      username: document.getElementById("username").value,
      password: document.getElementById("password").value,
    });
    accessToken = pair.access;
    const me = await call("GET", "/api/auth/me/");
    if (me.role !== "ADMIN") {
      accessToken = null;
      say(L("this account is not an operator", "此帳號不是管理員"), false);
      return;
    }
    document.getElementById("whoami").textContent = L("signed in as ", "已登入：") + me.username;
    document.getElementById("signin").classList.add("hidden");
    document.getElementById("workspace").classList.remove("hidden");
    say(L("signed in", "已登入"), true);
    await findUsers();
    await loadPayments();
    await loadRefunds();
    await loadFailedInvoices();
    await loadStatements();
    await loadAudit();
  } catch (e) { say(e.message, false); }
});

// Today in Taipei, where periods are counted (settlement::end_of_taipei_day); a UTC date would
// be yesterday's from 00:00 to 08:00 Taipei and close nothing sold since. Taiwan keeps no summer
// time, so the fixed +8 h offset is exact.
document.getElementById("period-end").value = new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
document.getElementById("close-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const report = await call("POST", "/api/admin/settlements/close/", { period_end: document.getElementById("period-end").value });
    say(L("period closed: " + report.statements.length + " statement(s)", "已結算：" + report.statements.length + " 張對帳單"), true);
    await loadStatements();
  } catch (e) { say(e.message, false); }
});

document.getElementById("user-search").addEventListener("submit", async (event) => {
  event.preventDefault();
  try { await findUsers(); } catch (e) { say(e.message, false); }
});


// One Idempotency-Key per filled-in form: a double click, a second submit of the same values or a
// retry after a lost answer reuses it (the API replays the first answer), while changing any field
// starts a new one.
let adjustmentKey = null;
const adjustForm = document.getElementById("adjust-form");
adjustForm.addEventListener("input", () => { adjustmentKey = null; });

adjustForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = document.getElementById("adjust");
  if (button.disabled) return;
  const member = document.getElementById("adjust-member").value.trim();
  const amount = Number(document.getElementById("adjust-amount").value);
  const reason = document.getElementById("adjust-reason").value.trim();
  if (!USER_ID.test(member)) {
    say(L("the member id must be a user id (8-4-4-4-12 hexadecimal digits)", "會員編號格式不正確（8-4-4-4-12 位十六進位）"), false);
    return;
  }
  if (adjustmentKey === null) {
    adjustmentKey = "console-" + crypto.randomUUID();
  }
  button.disabled = true;
  try {
    const entry = await call("POST", "/api/admin/members/" + encodeURIComponent(member) + "/points/adjustments/", { amount, reason }, { "Idempotency-Key": adjustmentKey });
    say(L("adjusted by " + entry.amount + "; balance now " + entry.balance_after, "已調整 " + entry.amount + " 點；目前餘額 " + entry.balance_after), true);
    adjustForm.reset();
    adjustmentKey = null;
    await loadAudit();
  } catch (e) {
    say(e.message, false);
  } finally {
    button.disabled = false;
  }
});

document.getElementById("load-payments").addEventListener("click", () => loadPayments().catch((e) => say(e.message, false)));
document.getElementById("load-refunds").addEventListener("click", () => loadRefunds().catch((e) => say(e.message, false)));
document.getElementById("load-invoices").addEventListener("click", () => loadFailedInvoices().catch((e) => say(e.message, false)));
document.getElementById("load-audit").addEventListener("click", () => loadAudit().catch((e) => say(e.message, false)));
