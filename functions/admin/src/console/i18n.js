"use strict";
// Everything here talks to this same API; the token lives in memory only (a reload signs out).
let accessToken = null;

// A user id as the API writes it: anything else never goes into a path.
const USER_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// The page's language: the browser's, chosen as the API chooses from Accept-Language (zh, zh-TW…,
// zh-Hant… are Traditional Chinese; the first of navigator.languages the two know wins).
const LANG = (() => {
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const t = tag.toLowerCase();
    if (t === "zh" || t.startsWith("zh-tw") || t.startsWith("zh-hant")) return "zh";
    if (t === "en" || t.startsWith("en-")) return "en";
  }
  return "en";
})();
const TEXT = {
  title: ["Points redemption · operator console", "點數兌換贈品系統 營運後台"],
  signin: ["Sign in", "登入"], username: ["Username", "使用者名稱"], password: ["Password", "密碼"],
  users: ["Users", "使用者"], userq: ["username or email prefix", "使用者名稱或電子郵件開頭"],
  anyrole: ["any role", "任何身分"], anystate: ["enabled or not", "啟用與否"], enabled: ["enabled", "啟用中"],
  disabled: ["disabled", "已停用"], find: ["Find", "搜尋"], actionreason: ["reason for disable / enable", "停用或啟用的原因"],
  email: ["Email", "電子郵件"], role: ["Role", "身分"], state: ["State", "狀態"], id: ["Id", "編號"],
  adjust: ["Adjust points", "調整點數"], memberid: ["member id", "會員編號"], points: ["±points", "±點數"],
  adjustreason: ["reason (shown to the member)", "原因（會員看得到）"], adjustbutton: ["Adjust", "調整"],
  payments: ["Stuck payments (pending, longest waiting first)", "卡住的付款（待付款，等最久的在前）"],
  refresh: ["Refresh", "重新整理"], tradeno: ["MerchantTradeNo", "特店訂單編號"], member: ["Member", "會員"],
  amount: ["Amount", "金額"], created: ["Created", "建立時間"], lastword: ["Last word from ECPay", "綠界最後回覆"],
  refunds: ["Refunds of purchased points (newest first)", "購買點數退款（最新在前）"],
  refundref: ["bank transfer reference, to close by hand", "人工轉帳的參考號碼"], refund: ["Refund", "退款"],
  owed: ["Owed", "應退"], returned: ["Returned", "已退"], message: ["Message", "訊息"],
  invoices: ["E-invoices that failed (latest first)", "開立失敗的電子發票（最新在前）"], relate: ["RelateNumber", "關聯號碼"],
  failure: ["Failure", "失敗原因"], calls: ["Calls", "呼叫次數"],
  statements: ["Merchant statements (issued, to pay)", "商家對帳單（已開立，待付款）"], closeperiod: ["Close the period", "結算此期"],
  transferref: ["bank transfer reference, to mark paid", "轉帳參考號碼（標記已付款）"], statement: ["Statement", "對帳單"],
  merchant: ["Merchant", "商家"], period: ["Period", "期間"], lines: ["Lines", "筆數"], gross: ["Gross", "總額"],
  commission: ["Commission", "佣金"], net: ["Net owed", "應付淨額"], audit: ["Audit log", "稽核紀錄"],
  when: ["When (Taipei)", "時間（臺北）"], operator: ["Operator", "管理員"], action: ["Action", "動作"],
  target: ["Target", "對象"], change: ["Before → after", "變更前 → 變更後"], reason: ["Reason", "原因"],
};
function T(key) { const pair = TEXT[key]; return pair ? pair[LANG === "zh" ? 1 : 0] : key; }
function L(english, chinese) { return LANG === "zh" ? chinese : english; }
document.documentElement.lang = LANG === "zh" ? "zh-Hant-TW" : "en";
document.title = T("title");
for (const element of document.querySelectorAll("[data-t]")) element.textContent = T(element.dataset.t);
for (const element of document.querySelectorAll("[data-tp]")) element.placeholder = T(element.dataset.tp);

// A moment, in Taipei time (the API writes UTC).
function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(LANG === "zh" ? "zh-TW" : "en-GB", { timeZone: "Asia/Taipei", hour12: false });
}

// People by username: ids are resolved once each, in batches, through /api/admin/users/names/.
const NAMES = new Map();
function personCell(row, id) {
  const td = cell(row, NAMES.get(id) || id, NAMES.has(id) ? "" : "muted");
  td.dataset.userId = id;
  return td;
}
async function showNames() {
  const cells = [...document.querySelectorAll("td[data-user-id]")];
  const unknown = [...new Set(cells.map((td) => td.dataset.userId).filter((id) => USER_ID.test(id) && !NAMES.has(id)))];
  for (let i = 0; i < unknown.length; i += 100) {
    const found = await call("GET", "/api/admin/users/names/?ids=" + unknown.slice(i, i + 100).join(","));
    for (const [id, name] of Object.entries(found.names)) NAMES.set(id, name);
  }
  for (const td of cells) {
    const name = NAMES.get(td.dataset.userId);
    if (name) {
      td.textContent = td.dataset.prefix ? td.dataset.prefix + name : name;
      td.className = "";
      td.title = td.dataset.userId;
    }
  }
}

// An audit entry's change, field by field: "points: 0 → 250".
function changes(before, after) {
  const plain = (v) => (v === null || v === undefined ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const isObject = (v) => v && typeof v === "object" && !Array.isArray(v);
  if (!isObject(before) && !isObject(after)) return plain(before) + " → " + plain(after);
  const b = isObject(before) ? before : {};
  const a = isObject(after) ? after : {};
  return [...new Set([...Object.keys(b), ...Object.keys(a)])]
    .filter((k) => JSON.stringify(b[k]) !== JSON.stringify(a[k]))
    .map((k) => k + ": " + plain(b[k]) + " → " + plain(a[k]))
    .join("; ");
}

