// The "private tools": each is one small chat prompt over the loaded model, plus the parsing of its answer.
// Pure functions (no DOM, no engine) so they can be tested under node.

/** Tones offered by the rewrite tool: value -> instruction fragment. */
export const TONES = {
  formal: 'formal and professional',
  friendly: 'warm and friendly',
  concise: 'concise: as short as possible while keeping every fact',
  simple: 'simple, plain English that anyone can understand',
  confident: 'confident and direct',
};

/** Messages asking for a short summary of `text`. */
export function summarizeMessages(text) {
  return [
    { role: 'system', content: 'You summarize text. Reply with a short summary of two or three sentences and nothing else.' },
    { role: 'user', content: `Summarize this text:\n\n${text.trim()}` },
  ];
}

/** Messages asking to rewrite `text` in one of TONES. */
export function rewriteMessages(text, tone) {
  const style = TONES[tone] ?? TONES.formal;
  return [
    { role: 'system', content: `You rewrite text so that it sounds ${style}. Keep the meaning. Reply with the rewritten text only.` },
    { role: 'user', content: `Rewrite this text:\n\n${text.trim()}` },
  ];
}

/** Messages asking for a one-word sentiment label. */
export function sentimentMessages(text) {
  return [
    { role: 'system', content: 'You classify the sentiment of a text. Answer with exactly one word: positive, negative or neutral.' },
    { role: 'user', content: `Text: ${text.trim()}\n\nIs the sentiment of this text positive, negative or neutral? Answer with one word.` },
  ];
}

/** Generation options for the sentiment answer: greedy and short, one line. */
export const SENTIMENT_OPTIONS = Object.freeze({ temperature: 0, maxTokens: 8, stop: ['\n'] });

export const SENTIMENTS = ['positive', 'negative', 'neutral'];

// Stems so that "Positive.", "**NEGATIVE**", "positively", "negativity" and "neutrality" all count.
const STEMS = [
  ['positive', /\bpositiv\w*/g],
  ['negative', /\bnegativ\w*/g],
  ['neutral', /\bneutral\w*|\bmixed\b/g],
];
// Used only when no label word appears at all (small models sometimes answer with an adjective instead).
const SYNONYMS = [
  ['positive', /\b(good|great|happy|joy\w*|love[ds]?|excellent|wonderful|pleased|favou?rable|optimistic|upbeat|pos)\b/g],
  ['negative', /\b(bad|sad|angry|anger|hate[ds]?|terrible|awful|horrible|upset|disappoint\w*|unhappy|pessimistic|neg)\b/g],
  ['neutral', /\b(none|objective|factual|indifferent|balanced)\b/g],
];

/**
 * The sentiment label in a model's answer, or null when the answer names none (or names all three, which means the
 * model echoed the question). Handles decoration ("Sentiment: **Positive**."), negation ("not negative" -> the other
 * named label, or neutral) and "neither positive nor negative" (-> neutral).
 * @param {string} answer
 * @returns {'positive'|'negative'|'neutral'|null}
 */
export function parseSentiment(answer) {
  if (typeof answer !== 'string') return null;
  const text = answer.toLowerCase().replace(/[^a-z\s']/g, ' ').replace(/\s+/g, ' ').trim();
  if (!text) return null;
  if (/\bneither\b.*\bnor\b/.test(text)) return 'neutral';
  for (const table of [STEMS, SYNONYMS]) {
    const hits = [];
    for (const [label, re] of table) {
      for (const m of text.matchAll(re)) {
        const before = text.slice(Math.max(0, m.index - 8), m.index);
        hits.push({ label, index: m.index, negated: /\b(not|isn't|isnt|no)\s$/.test(before) });
      }
    }
    if (!hits.length) continue;
    hits.sort((a, b) => a.index - b.index);
    // An answer that starts with a label is the one-word answer we asked for, whatever explanation follows.
    if (hits[0].index === 0) return hits[0].label;
    if (new Set(hits.map((h) => h.label)).size === 3) return null;
    const plain = hits.find((h) => !h.negated);
    if (plain) return plain.label;
    // Only negated labels: "not negative" leans neither way that we can trust.
    return 'neutral';
  }
  return null;
}
