// The tools panel: summarize, rewrite in a tone, sentiment, over the pasted text (prompts in ../tools.js).
import {
  TONES, summarizeMessages, rewriteMessages, sentimentMessages, SENTIMENT_OPTIONS, parseSentiment,
} from '../tools.js';
import { el, state, announce, updateControls, stopGenerating, isAbort, describeError } from './page.js';
import { replyMeta } from './chat.js';

const TOOL_OPTIONS = { temperature: 0.2, topP: 0.9, repeatPenalty: 1.1 };
const TOOL_TITLES = { summarize: 'summary', rewrite: 'rewrite', sentiment: 'sentiment' };

export function setupToolsPanel() {
  for (const tone of Object.keys(TONES)) el.tone.append(new Option(`in a ${tone} tone`, tone));
  el.toolStop.addEventListener('click', stopGenerating);
  for (const btn of el.toolButtons) btn.addEventListener('click', () => runTool(btn.dataset.tool));
  el.toolInput.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && state.generating) stopGenerating();
  });
  el.toolCopy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(el.toolOutput.textContent);
      announce('Result copied to the clipboard.');
    } catch {
      announce('Copying is not allowed here; select the text instead.');
    }
  });
}

async function runTool(kind) {
  if (!state.lm || state.generating) return;
  const text = el.toolInput.value.trim();
  if (!text) {
    el.toolOutput.replaceChildren(hint('Paste some text above first.'));
    el.toolInput.focus();
    return;
  }
  const ctl = new AbortController();
  state.generating = { ctl, kind: 'tool' };
  el.toolKind.textContent = kind === 'rewrite' ? `· rewrite ${el.tone.selectedOptions[0].text}` : `· ${TOOL_TITLES[kind]}`;
  el.sentimentBadge.hidden = true;
  el.toolCopy.disabled = true;
  el.toolStats.textContent = '';
  const out = document.createTextNode('');
  el.toolOutput.replaceChildren(out);
  el.toolOutput.classList.remove('error', 'muted');
  updateControls();

  try {
    if (kind === 'sentiment') {
      el.toolOutput.replaceChildren(hint('Reading…'));
      const answer = asText(await state.lm.chat(sentimentMessages(text), { ...SENTIMENT_OPTIONS, signal: ctl.signal }));
      const label = parseSentiment(answer);
      el.sentimentBadge.textContent = label ?? 'unclear';
      el.sentimentBadge.dataset.label = label ?? 'unclear';
      el.sentimentBadge.hidden = false;
      el.toolOutput.replaceChildren(document.createTextNode(`The model answered: “${answer.trim()}”`));
      el.toolOutput.classList.add('muted');
    } else {
      const messages = kind === 'summarize' ? summarizeMessages(text) : rewriteMessages(text, el.tone.value);
      const maxTokens = kind === 'summarize' ? 160 : Math.min(768, 64 + Math.ceil(text.length / 2));
      for await (const piece of state.lm.chatStream(messages, { ...TOOL_OPTIONS, maxTokens, signal: ctl.signal })) {
        out.appendData(piece);
      }
      if (!out.data.trim()) el.toolOutput.replaceChildren(hint('(The model returned nothing.)'));
    }
  } catch (err) {
    if (isAbort(err)) {
      el.toolOutput.append(hint(out.data ? ' — stopped.' : 'Stopped.'));
    } else {
      console.error(err);
      el.toolOutput.replaceChildren(document.createTextNode(describeError(err)));
      el.toolOutput.classList.add('error');
    }
  }
  // The chat's tokens/s and context figures stay the chat's; the tool's own figures go under its result.
  const st = state.lm?.lastStats;
  el.toolStats.textContent = st && Number.isFinite(st.decodeTokensPerSecond) ? replyMeta(st) : '';
  el.toolCopy.disabled = !el.toolOutput.textContent.trim();
  const hadFocus = document.activeElement === el.toolStop;
  state.generating = null;
  updateControls();
  if (hadFocus) el.toolButtons[0].focus();
}

function asText(result) {
  if (typeof result === 'string') return result;
  if (result && typeof result.text === 'string') return result.text;
  return String(result ?? '');
}

function hint(text) {
  const span = document.createElement('span');
  span.className = 'hint';
  span.textContent = text;
  return span;
}
