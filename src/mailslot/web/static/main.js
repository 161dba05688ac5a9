// The Mailslot web client: sign in, people, compose, inbox, sent and search,
// over one WebSocket that is re-opened with back-off while signed in.

import { Compose } from "./compose.js";
import { Connection, ConnectionLost, ServerError, socketUrl } from "./connection.js";
import { Archive, fold } from "./store.js";

const $ = (id) => document.getElementById(id);
const PING_EVERY = 4 * 60 * 1000; // well inside the server's 10-minute idle timeout
const MAX_BACKOFF = 30; // seconds
const AUTO_FETCH = "mailslot.fetch-on-arrival";
const LIST_LIMIT = 500; // messages drawn in one list; the archive keeps them all

const people = new Map(); // folded name -> {name, online}
const state = {
  connection: null,
  user: null, // the name as the server spells it, once signed in
  password: null, // kept in memory only, to sign in again after a reconnect
  owner: null, // archive key: this server and this user
  waiting: 0,
  tab: "inbox",
  attempt: 0,
  retryTimer: null,
  countdownTimer: null,
  pingTimer: null,
  reconnecting: false,
  checking: null,
  checkAgain: false,
  freshIds: new Set(),
};
let archive = null;
const compose = new Compose({ people, send: sendMessage });

// ----- connection --------------------------------------------------------------------------

function setConnectionState(kind, text, { retry = false } = {}) {
  const element = $("connection");
  element.dataset.state = kind;
  $("connection-text").textContent = text;
  $("retry").hidden = !retry;
  compose.connected = kind === "online";
  compose.render();
  $("check").setAttribute("aria-disabled", kind === "online" ? "false" : "true");
}

async function openConnection() {
  if (state.connection !== null && state.connection.open) return state.connection;
  const connection = new Connection(socketUrl(window.location));
  state.connection = connection;
  connection.addEventListener("frame", (event) => {
    if (state.connection === connection) onEvent(event.detail);
  });
  connection.addEventListener("closed", (event) => {
    if (state.connection === connection) onClosed(event.detail.reason);
  });
  const welcome = await connection.connect();
  compose.setLimits(welcome.limits);
  return connection;
}

function onClosed(reason) {
  clearInterval(state.pingTimer);
  if (state.user === null) return; // signed out: the next sign-in connects again
  if (reason === "account_deleted") {
    signOut("The server's operator deleted this name; it is free to be taken again.");
    return;
  }
  scheduleReconnect(reason === "shutdown" ? "The server is restarting." : "Connection lost.");
}

function scheduleReconnect(why) {
  clearTimeout(state.retryTimer);
  clearInterval(state.countdownTimer);
  const base = Math.min(MAX_BACKOFF, 0.5 * 2 ** state.attempt);
  const delay = base * (0.8 + Math.random() * 0.4);
  state.attempt += 1;
  const until = Date.now() + delay * 1000;
  const show = () => {
    const seconds = Math.max(0, Math.ceil((until - Date.now()) / 1000));
    setConnectionState("waiting", `${why} Reconnecting in ${seconds} s…`, { retry: true });
  };
  show();
  state.countdownTimer = setInterval(show, 1000);
  state.retryTimer = setTimeout(reconnect, delay * 1000);
}

async function reconnect() {
  clearTimeout(state.retryTimer);
  clearInterval(state.countdownTimer);
  if (state.user === null || state.reconnecting) return;
  state.reconnecting = true;
  setConnectionState("connecting", "Reconnecting…");
  try {
    await openConnection();
    signedIn(await signInAgain());
  } catch (error) {
    if (error instanceof ServerError && ["wrong_password", "invalid_username"].includes(error.code)) {
      signOut(`Signed out: ${sentence(error.message)}`);
      return;
    }
    if (error instanceof NameGone) {
      signOut(error.message);
      return;
    }
    const connection = state.connection;
    state.connection = null; // its close is this failure, already handled here
    if (connection !== null) connection.close();
    const why = error instanceof ServerError ? sentence(error.message) : "The server cannot be reached.";
    scheduleReconnect(why);
  } finally {
    state.reconnecting = false;
  }
}

class NameGone extends Error {}

// Without the password first, as at sign-in: a name that is new to the server now (it
// was deleted, or the server's data was restored from before it) must not be created
// again behind the person's back.
async function signInAgain() {
  try {
    return await login(state.user, null);
  } catch (error) {
    if (!(error instanceof ServerError) || error.code !== "password_required") throw error;
    if (error.reply.new) throw new NameGone(`Signed out: the name “${state.user}” no longer exists on this server.`);
    return await login(state.user, state.password);
  }
}

function login(user, password) {
  const fields = { user };
  if (password !== null && password !== "") fields.password = password;
  return state.connection.request("login", fields);
}

function onEvent(frame) {
  switch (frame.event) {
    case "mail":
      setWaiting(frame.waiting);
      announce(`${frame.waiting} new ${frame.waiting === 1 ? "message" : "messages"} waiting.`);
      if (autoFetch()) checkMessages();
      break;
    case "online":
    case "offline":
    case "new_user": {
      const key = fold(frame.user);
      const known = people.get(key);
      const online = frame.event === "online" || (frame.event === "new_user" ? known?.online ?? false : false);
      people.set(key, { name: known?.name ?? frame.user, online });
      renderPeople();
      break;
    }
    default:
      break; // closing and events of later versions
  }
}

// ----- signing in and out ------------------------------------------------------------------

const loginForm = $("login-form");
let newName = null; // the name being created, while its password is asked again

function loginSay(text) {
  $("login-error").textContent = text;
}

function askConfirm(name) {
  newName = name;
  $("login-title").textContent = "Create a name";
  $("login-intro").textContent = `“${name}” is new here. Choose its password and type it twice; from now on it protects the name.`;
  $("confirm-row").hidden = false;
  $("login-back").hidden = false;
  $("login-name").readOnly = true;
  $("login-submit").textContent = "Create and sign in";
  $("login-password").autocomplete = "new-password";
  ($("login-password").value ? $("login-confirm") : $("login-password")).focus();
}

function resetLoginForm() {
  newName = null;
  $("login-title").textContent = "Sign in";
  $("login-intro").textContent = "The first use of a name sets its password.";
  $("confirm-row").hidden = true;
  $("login-back").hidden = true;
  $("login-name").readOnly = false;
  $("login-confirm").value = "";
  $("login-submit").textContent = "Sign in";
  $("login-password").autocomplete = "current-password";
}

$("login-back").addEventListener("click", () => {
  resetLoginForm();
  loginSay("");
  $("login-name").focus();
});

loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("login-name").value.trim();
  const password = $("login-password").value;
  if (!name) {
    loginSay("Type your name.");
    $("login-name").focus();
    return;
  }
  if (newName !== null) {
    if (!password) return failLogin("Choose a password.", "login-password");
    if (password !== $("login-confirm").value) {
      return failLogin("The two passwords differ. Type them again.", "login-confirm");
    }
  }
  const submit = $("login-submit");
  submit.disabled = true;
  loginSay("");
  try {
    try {
      archive = await archiveReady;
    } catch {
      return failLogin(NO_STORAGE, "login-name");
    }
    try {
      await openConnection();
    } catch {
      return failLogin("The server cannot be reached. Try again in a moment.", "login-name");
    }
    let reply;
    if (newName !== null) {
      reply = await login(name, password);
    } else {
      // Without a password first: the answer says whether the name is new, so that a
      // new name's password is asked twice before it is set.
      try {
        reply = await login(name, null);
      } catch (error) {
        if (!(error instanceof ServerError) || error.code !== "password_required") throw error;
        if (error.reply.new) {
          askConfirm(name);
          return;
        }
        if (!password) return failLogin(`Type the password of ${name}.`, "login-password");
        reply = await login(name, password);
      }
    }
    state.password = password || null;
    signedIn(reply);
  } catch (error) {
    if (error instanceof ConnectionLost) {
      failLogin("The connection closed while signing in. Try again.", "login-name");
    } else if (error instanceof ServerError) {
      const [sentence, field] = loginSentence(error, name);
      if (field === "login-name") resetLoginForm();
      failLogin(sentence, field);
    } else {
      throw error;
    }
  } finally {
    submit.disabled = false;
  }
});

// The desktop client's sentences (gui/errors.py), with the field to correct.
function loginSentence(error, name) {
  switch (error.code) {
    case "username_in_use":
      return [`The name “${name}” is in use by someone connected right now. Please choose another name.`, "login-name"];
    case "wrong_password":
      return [`Wrong password for “${name}”. Please try again.`, "login-password"];
    case "password_required":
      return ["This server protects every name with a password. Please enter yours.", "login-password"];
    case "rate_limited":
      return [`Too many attempts for “${name}”. Please wait ${Math.ceil(error.reply.retry_after || 1)} seconds and try again.`, "login-password"];
    case "server_busy":
      return ["The server is full right now. Please retry in a moment.", "login-name"];
    default:
      return [sentence(error.message), "login-name"];
  }
}

function sentence(text) {
  const trimmed = (text || "the server refused the request").trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

function failLogin(sentence, field) {
  loginSay(sentence);
  $(field).focus();
  if (field.includes("password")) $(field).select();
}

async function signedIn(reply) {
  const first = state.user === null;
  state.user = reply.user;
  state.owner = `${window.location.host}|${fold(reply.user)}`;
  state.attempt = 0;
  compose.me = reply.user;
  setConnectionState("online", "Connected");
  clearInterval(state.pingTimer);
  state.pingTimer = setInterval(() => state.connection?.request("ping").catch(() => {}), PING_EVERY);
  if (first) {
    resetLoginForm();
    $("login-password").value = "";
    $("me").textContent = reply.user;
    $("login-view").hidden = true;
    $("app-view").hidden = false;
    $("account").hidden = false;
    document.body.classList.add("signed-in");
    await showTab("inbox");
    $(reply.waiting > 0 ? "check" : "to").focus();
  }
  setWaiting(reply.waiting);
  await refreshPeople();
  if (reply.waiting > 0 && autoFetch()) checkMessages();
}

function signOut(sentence = "") {
  const connection = state.connection;
  state.user = null;
  state.password = null;
  state.connection = null;
  clearTimeout(state.retryTimer);
  clearInterval(state.countdownTimer);
  clearInterval(state.pingTimer);
  if (connection !== null) connection.close();
  people.clear();
  state.freshIds.clear();
  compose.reset();
  setWaiting(0);
  setConnectionState("offline", "Not connected");
  document.body.classList.remove("signed-in");
  $("app-view").hidden = true;
  $("account").hidden = true;
  $("login-view").hidden = false;
  loginSay(sentence);
  $("login-name").focus();
}

$("logout").addEventListener("click", () => signOut());
$("retry").addEventListener("click", () => reconnect());

// ----- people ------------------------------------------------------------------------------

async function refreshPeople() {
  try {
    const reply = await state.connection.request("users");
    people.clear();
    for (const user of reply.users) people.set(fold(user.name), { name: user.name, online: user.online });
    renderPeople();
  } catch {
    // The connection dropped: the reconnect asks again.
  }
}

function renderPeople() {
  const filter = fold($("people-filter").value.trim());
  const me = fold(state.user || "");
  const everyone = [...people.values()].sort(
    (a, b) => (b.online - a.online) || (fold(a.name) < fold(b.name) ? -1 : 1),
  );
  const shown = everyone.filter((person) => fold(person.name).includes(filter));
  const online = everyone.filter((person) => person.online || fold(person.name) === me).length;
  $("people-count").textContent = `${online} of ${everyone.length} online`;
  $("people-toggle").textContent = `People (${online} of ${everyone.length} online)`;
  $("people-list").replaceChildren(
    ...shown.map((person) => {
      const isMe = fold(person.name) === me;
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "person";
      button.dataset.name = person.name;
      const isOnline = person.online || isMe;
      const dot = document.createElement("span");
      dot.className = `dot ${isOnline ? "on" : "off"}`;
      dot.setAttribute("aria-hidden", "true");
      const label = document.createElement("span");
      label.className = "name";
      label.textContent = person.name;
      const status = document.createElement("span");
      status.className = "status";
      status.textContent = (isMe ? "you, " : "") + (isOnline ? "online" : "offline");
      button.append(dot, label, status);
      button.title = `Write to ${person.name}`;
      item.append(button);
      return item;
    }),
  );
  if (shown.length === 0) {
    const item = document.createElement("li");
    item.className = "muted empty";
    item.textContent = everyone.length ? "Nobody matches the filter." : "Nobody yet.";
    $("people-list").append(item);
  }
  $("names").replaceChildren(
    ...everyone.map((person) => Object.assign(document.createElement("option"), { value: person.name })),
  );
  compose.render();
}

$("people-filter").addEventListener("input", renderPeople);
$("people-list").addEventListener("click", (event) => {
  const button = event.target.closest("button.person");
  if (button === null) return;
  compose.pick(button.dataset.name);
  if (window.matchMedia("(max-width: 47.99rem)").matches) togglePeople(false);
  $("text").focus();
});

function togglePeople(open) {
  $("people-toggle").setAttribute("aria-expanded", String(open));
  $("people").classList.toggle("open", open);
}
$("people-toggle").addEventListener("click", () => {
  togglePeople($("people-toggle").getAttribute("aria-expanded") !== "true");
});

// ----- sending -----------------------------------------------------------------------------

async function sendMessage(mode, names, text) {
  const fields = { mode, text };
  if (mode !== "all") fields.to = names;
  let reply;
  try {
    reply = await state.connection.request("send", fields);
  } catch (error) {
    if (error.code === "unknown_recipient") await refreshPeople();
    throw error;
  }
  await archive.saveSent(state.owner, {
    id: reply.msg, at: reply.at, text, mode, to: mode === "all" ? [] : names, recipients: reply.recipients,
  });
  if (state.tab !== "inbox") await renderList();
  return reply;
}

// ----- checking mail -----------------------------------------------------------------------

function setWaiting(waiting) {
  state.waiting = waiting;
  const badge = $("badge");
  badge.hidden = waiting === 0;
  badge.textContent = String(waiting);
  badge.setAttribute("aria-label", `${waiting} waiting`);
  $("waiting").textContent = waiting === 0 ? "No mail waiting on the server." : `${waiting} waiting on the server.`;
  document.title = waiting > 0 ? `(${waiting}) Mailslot` : "Mailslot";
  if ("setAppBadge" in navigator) {
    (waiting > 0 ? navigator.setAppBadge(waiting) : navigator.clearAppBadge()).catch(() => {});
  }
}

function autoFetch() {
  return localStorage.getItem(AUTO_FETCH) === "on";
}

$("auto-fetch").addEventListener("change", () => {
  localStorage.setItem(AUTO_FETCH, $("auto-fetch").checked ? "on" : "off");
  if ($("auto-fetch").checked && state.waiting > 0 && state.connection?.open) checkMessages();
});

// Fetches everything waiting: each batch is stored in IndexedDB, then acknowledged.
// `show`: the person asked, so the inbox comes to the front.
function checkMessages({ show = false } = {}) {
  if (state.checking !== null) {
    state.checkAgain = true;
    return state.checking;
  }
  const button = $("check");
  button.textContent = "Checking…";
  button.setAttribute("aria-busy", "true");
  state.checking = (async () => {
    let fetched = 0;
    let outcome;
    try {
      do {
        state.checkAgain = false;
        let more = true;
        while (more) {
          const reply = await state.connection.request("check");
          const fresh = await archive.saveReceived(state.owner, reply.messages);
          for (const record of fresh) state.freshIds.add(record.id);
          fetched += fresh.length;
          if (reply.messages.length > 0) {
            const acked = await state.connection.request("ack", { ids: reply.messages.map((m) => m.id) });
            setWaiting(acked.waiting);
          } else {
            setWaiting(0);
          }
          more = reply.more;
        }
      } while (state.checkAgain);
      outcome = fetched === 0 ? "No new messages." : `${fetched} new ${fetched === 1 ? "message" : "messages"} in the inbox.`;
    } catch (error) {
      outcome = error instanceof ConnectionLost ? "The connection dropped while checking; what arrived is kept." : error.message;
    } finally {
      state.checking = null;
      button.textContent = "Check messages";
      button.removeAttribute("aria-busy");
    }
    if (state.tab === "inbox") await renderList();
    else if (show) await showTab("inbox");
    announce(outcome);
  })();
  return state.checking;
}

$("check").addEventListener("click", () => {
  if (state.connection?.open) checkMessages({ show: true });
});

function announce(text) {
  const announcer = $("announcer");
  announcer.textContent = "";
  // A fresh text node is read out even when the sentence repeats.
  setTimeout(() => (announcer.textContent = text), 50);
}

// ----- message lists -----------------------------------------------------------------------

const TABS = ["inbox", "sent", "archive"];

// The tab changes at once (a shortcut typed next acts on it); its list follows.
async function showTab(tab) {
  const leavingInbox = state.tab === "inbox" && tab !== "inbox" && state.owner !== null;
  state.tab = tab;
  for (const name of TABS) {
    const button = $(`tab-${name}`);
    const selected = name === tab;
    button.setAttribute("aria-selected", String(selected));
    button.tabIndex = selected ? 0 : -1;
  }
  $("panel").setAttribute("aria-labelledby", `tab-${tab}`);
  $("check").hidden = tab !== "inbox";
  $("waiting").hidden = tab !== "inbox";
  $("auto-fetch-row").hidden = tab !== "inbox";
  $("search-row").hidden = tab !== "archive";
  if (leavingInbox) {
    state.freshIds.clear();
    await archive.markRead(state.owner);
  }
  await renderList();
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
});
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

function parseTime(at) {
  return new Date(at.replace(/(\.\d{3})\d+/, "$1"));
}

function shortTime(date) {
  const today = new Date();
  return date.toDateString() === today.toDateString() ? timeFormat.format(date) : dateTimeFormat.format(date);
}

let listGeneration = 0;

async function renderList() {
  if (state.owner === null) return;
  const generation = ++listGeneration;
  const query = $("search").value.trim();
  let records;
  let empty;
  if (state.tab === "inbox") {
    records = await archive.list(state.owner, "in");
    empty = "No messages yet. Mail for you waits on the server until you check.";
  } else if (state.tab === "sent") {
    records = await archive.list(state.owner, "out");
    empty = "Nothing sent from this browser yet.";
  } else {
    records = query ? await archive.search(state.owner, query) : [];
    empty = query ? `No messages with “${query}”.` : "Type to search everything received and sent in this browser.";
  }
  if (generation !== listGeneration) return; // a newer render has started
  let note = records.length === 0 ? empty : "";
  if (records.length > LIST_LIMIT) {
    note = `The newest ${LIST_LIMIT} of ${records.length} are shown; Search finds any of them.`;
    records = records.slice(0, LIST_LIMIT);
  }
  $("list-empty").textContent = note;
  $("list-empty").hidden = note === "";
  $("messages").replaceChildren(...records.map(renderMessage));
}

function renderMessage(record) {
  const item = document.createElement("li");
  item.className = "message";
  item.dataset.id = String(record.id);
  item.dataset.kind = record.kind;
  const isNew = record.kind === "in" && (record.unread || state.freshIds.has(record.id));
  if (isNew) item.classList.add("new");
  const head = document.createElement("div");
  head.className = "message-head";
  const who = document.createElement("span");
  who.className = "who";
  if (record.kind === "in") {
    who.textContent = `From ${record.from}`;
  } else if (record.mode === "all") {
    who.textContent = `To everyone (${record.recipients})`;
  } else {
    who.textContent = `To ${record.to.join(", ")}`;
  }
  const date = parseTime(record.at);
  const time = document.createElement("time");
  time.dateTime = date.toISOString();
  time.textContent = shortTime(date);
  time.title = fullFormat.format(date);
  head.append(who);
  if (isNew) head.append(Object.assign(document.createElement("span"), { className: "tag", textContent: "New" }));
  head.append(time);
  const text = document.createElement("p");
  text.className = "text";
  text.textContent = record.text;
  item.append(head, text);
  if (record.kind === "in") {
    const reply = document.createElement("button");
    reply.type = "button";
    reply.className = "link reply";
    reply.textContent = "Reply";
    reply.setAttribute("aria-label", `Reply to ${record.from}`);
    reply.addEventListener("click", () => {
      compose.setMode("one");
      compose.recipients = [record.from];
      compose.render();
      $("text").focus();
    });
    item.append(reply);
  }
  return item;
}

for (const name of TABS) {
  $(`tab-${name}`).addEventListener("click", () => showTab(name));
}
$("tab-inbox").parentElement.addEventListener("keydown", (event) => {
  if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
  const step = event.key === "ArrowRight" ? 1 : TABS.length - 1;
  focusTab(TABS[(TABS.indexOf(state.tab) + step) % TABS.length]);
});

function focusTab(tab) {
  showTab(tab);
  $(`tab-${tab}`).focus();
}
$("search").addEventListener("input", () => renderList());

// ----- keyboard shortcuts ------------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  const target = event.target;
  const typing = target.closest("input, textarea, select, [contenteditable]") !== null;
  if (event.key === "Escape" && typing) {
    target.blur();
    return;
  }
  if (typing || event.ctrlKey || event.metaKey || event.altKey || state.user === null) return;
  if ($("help").open) return;
  const actions = {
    n: () => (compose.mode === "all" ? $("text") : $("to")).focus(),
    c: () => {
      if (state.connection?.open) checkMessages({ show: true });
    },
    i: () => focusTab("inbox"),
    s: () => focusTab("sent"),
    "/": () => {
      showTab("archive");
      $("search").focus();
    },
    p: () => {
      togglePeople(true);
      $("people-filter").focus();
    },
    "?": () => $("help").showModal(),
  };
  const action = actions[event.key];
  if (action !== undefined) {
    event.preventDefault();
    action();
  }
});
$("help-button").addEventListener("click", () => $("help").showModal());

// ----- start -------------------------------------------------------------------------------

const NO_STORAGE = "This browser does not allow storing messages (IndexedDB is off), which Mailslot needs.";
const archiveReady = Archive.open();
archiveReady.then(
  (opened) => (archive = opened),
  () => {
    loginSay(NO_STORAGE);
    $("login-submit").disabled = true;
  },
);
// The name field has `autofocus`: focusing it from here, once the archive is open,
// could move the caret away from what someone is already typing.
setConnectionState("offline", "Not connected");
$("auto-fetch").checked = autoFetch();
compose.render();
