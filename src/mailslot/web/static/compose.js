// The compose form: one person, several people or everyone, with the same rules
// and sentences as the desktop client, and the server's limits from its welcome.

import { fold } from "./store.js";

const $ = (id) => document.getElementById(id);

export function codePoints(text) {
  return [...text].length;
}

export class Compose {
  constructor({ people, send }) {
    this.people = people; // Map: folded name -> {name, online}
    this.send = send; // async (mode, names, text) -> reply
    this.me = null;
    this.maxText = 1000;
    this.maxRecipients = 100;
    this.connected = false;
    this.sending = false;
    this.recipients = [];
    this.form = $("compose");
    this.to = $("to");
    this.text = $("text");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    for (const radio of this.form.elements.mode) {
      radio.addEventListener("change", () => this.modeChanged());
    }
    this.to.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.submit();
      } else if (event.key === "Enter" || (event.key === "," && this.to.value.trim())) {
        // Enter takes the name; sending is the Send button's (or Ctrl+Enter's) job.
        event.preventDefault();
        if (this.to.value.trim()) this.acceptTyped();
      } else if (event.key === "Backspace" && this.to.value === "" && this.recipients.length) {
        this.remove(this.recipients[this.recipients.length - 1]);
      }
    });
    this.to.addEventListener("input", (event) => {
      // A pick from the suggestion list arrives as one whole name, not typed.
      const picked = event.inputType === undefined || event.inputType === "insertReplacementText";
      if (picked && this.lookup(this.to.value) && this.mode === "many") this.acceptTyped();
      this.edited();
    });
    this.text.addEventListener("input", () => this.edited());
    this.text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.submit();
      }
    });
    $("chips").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-name]");
      if (button) {
        this.remove(button.dataset.name);
        this.to.focus();
      }
    });
  }

  get mode() {
    return this.form.elements.mode.value;
  }

  setMode(mode) {
    this.form.elements.mode.value = mode;
    this.modeChanged();
  }

  setLimits(limits) {
    this.maxText = limits.max_text;
    this.maxRecipients = limits.max_recipients;
    this.render();
  }

  lookup(typed) {
    const key = fold(typed.trim());
    return key ? this.people.get(key) : undefined;
  }

  others() {
    return [...this.people.values()].filter((person) => fold(person.name) !== fold(this.me || ""));
  }

  // Nothing of the last user's message stays for the next one.
  reset() {
    this.recipients = [];
    this.to.value = "";
    this.text.value = "";
    this.me = null;
    this.say("", "");
    this.setMode("one");
  }

  // What was said about the last message is over once the next one is being written.
  edited() {
    if (!this.sending) this.say("", "");
    this.render();
  }

  modeChanged() {
    if (this.mode === "one" && this.recipients.length > 1) this.recipients = this.recipients.slice(0, 1);
    this.render();
  }

  // A person picked from the people list.
  pick(name) {
    if (this.mode === "all") this.form.elements.mode.value = "one";
    if (this.mode === "one") this.recipients = [name];
    else if (this.recipients.includes(name)) this.recipients = this.recipients.filter((n) => n !== name);
    else this.recipients = [...this.recipients, name];
    this.render();
  }

  remove(name) {
    this.recipients = this.recipients.filter((n) => n !== name);
    this.render();
  }

  typedProblem() {
    const typed = this.to.value.trim();
    if (!typed) return null;
    if (this.lookup(typed) === undefined) return `No one called “${typed}” has used this server yet.`;
    return null;
  }

  acceptTyped() {
    const problem = this.typedProblem();
    if (problem !== null) {
      this.say(problem, "error");
      return false;
    }
    const person = this.lookup(this.to.value);
    if (person !== undefined) {
      if (this.mode === "one") this.recipients = [person.name];
      else if (!this.recipients.includes(person.name)) this.recipients = [...this.recipients, person.name];
      this.to.value = "";
    }
    this.say("", "");
    this.render();
    return true;
  }

  problem() {
    if (!this.connected) return "Not connected. Sending is possible again once the connection is back.";
    if (this.sending) return "Sending…";
    const mode = this.mode;
    const typed = this.typedProblem();
    if (typed !== null && mode !== "all") return typed;
    const names = this.names();
    if (mode === "one" && names.length !== 1) return "Pick the person to write to.";
    if (mode === "many") {
      if (names.length === 0) return "Pick one or more people to write to.";
      if (names.length > this.maxRecipients) {
        return `At most ${this.maxRecipients} recipients per message; ${names.length} picked.`;
      }
    }
    if (mode === "all" && this.others().length === 0) return "There is nobody else on this server yet.";
    const text = this.text.value;
    if (!text.trim()) return "Write a message.";
    const length = codePoints(text);
    if (length > this.maxText) {
      const over = length - this.maxText;
      return `The message is ${over} ${over === 1 ? "character" : "characters"} over the server's limit of ${this.maxText}.`;
    }
    return null;
  }

  // The recipients, with a name still in the To field counted once it is a known one.
  names() {
    const person = this.to.value.trim() ? this.lookup(this.to.value) : undefined;
    if (person === undefined || this.recipients.includes(person.name)) return this.recipients;
    return this.mode === "one" ? [person.name] : [...this.recipients, person.name];
  }

  render() {
    const mode = this.mode;
    $("to-row").hidden = mode === "all";
    const chips = $("chips");
    chips.replaceChildren(
      ...this.recipients.map((name) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "chip";
        button.dataset.name = name;
        button.textContent = name;
        button.setAttribute("aria-label", `Remove ${name}`);
        button.append(Object.assign(document.createElement("span"), { textContent: " ×", ariaHidden: "true" }));
        item.append(button);
        return item;
      }),
    );
    this.to.placeholder = mode === "one" ? "A name" : "Names, one at a time";
    const summary = $("to-summary");
    if (mode === "all") {
      const count = this.others().length;
      summary.textContent = `To: everyone else on this server (${count} ${count === 1 ? "person" : "people"})`;
    } else {
      const names = this.names();
      summary.textContent = "To: " + (names.length ? names.join(", ") : "nobody yet");
    }
    const length = codePoints(this.text.value);
    const counter = $("counter");
    counter.textContent = `${length.toLocaleString()} / ${this.maxText.toLocaleString()} characters`;
    counter.classList.toggle("error", length > this.maxText);
    counter.classList.toggle("muted", length <= this.maxText);
    const problem = this.problem();
    const send = $("send");
    send.setAttribute("aria-disabled", problem === null ? "false" : "true");
    const said = $("feedback").textContent;
    $("hint").textContent = problem !== null && problem === said ? "" : problem || "Ready to send.";
  }

  say(text, kind) {
    const feedback = $("feedback");
    feedback.textContent = text;
    feedback.className = `feedback ${kind}`;
  }

  async submit() {
    if (this.to.value.trim() && this.mode !== "all" && !this.acceptTyped()) return;
    const problem = this.problem();
    if (problem !== null) {
      this.say(problem, "error");
      this.render();
      return;
    }
    const mode = this.mode;
    const names = mode === "all" ? [] : [...this.recipients];
    const text = this.text.value;
    this.sending = true;
    this.say("Sending…", "muted");
    this.render();
    try {
      const reply = await this.send(mode, names, text);
      const when = new Date(reply.at).toLocaleTimeString();
      const count = reply.recipients;
      const who =
        mode === "all"
          ? `everyone (${count} ${count === 1 ? "person" : "people"})`
          : names.length === 1
            ? names[0]
            : `${names.join(", ")} (${count} people)`;
      this.text.value = "";
      this.to.value = "";
      this.recipients = [];
      this.sending = false;
      this.say(`✓ Sent to ${who} at ${when}.`, "success");
      (mode === "all" ? this.text : this.to).focus();
    } catch (error) {
      this.sending = false;
      this.say(`Not sent: ${sendSentence(error)}`, "error");
    }
    this.render();
  }
}

// The desktop client's sentences (gui/errors.py).
function sendSentence(error) {
  switch (error.code) {
    case "unknown_recipient": {
      const listed = (error.reply.names || []).map((name) => `“${name}”`).join(", ") || "a recipient";
      return `the server does not know ${listed}. Pick names from the list (it has been refreshed).`;
    }
    case "connection_lost":
      return "the connection was lost before the server confirmed it. Your text is kept; look in Sent before sending it again.";
    case "rate_limited":
      return "you are sending too fast. Please wait a moment and send again.";
    default: {
      const text = (error.message || "the server refused the request").trim();
      return /[.!?]$/.test(text) ? text : `${text}.`;
    }
  }
}
