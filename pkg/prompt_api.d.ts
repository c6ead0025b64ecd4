// Types for `pocketlm/prompt-api`: the Prompt API (WICG webmachinelearning/prompt-api) on a local model.

import type { PocketLM, LoadOptions } from './index.js';

export type Availability = 'unavailable' | 'downloadable' | 'downloading' | 'available';
export type LanguageModelMessageRole = 'system' | 'user' | 'assistant';
export type LanguageModelMessageType = 'text' | 'image' | 'audio' | 'tool-call' | 'tool-response';
export type LanguageModelSamplingMode = 'most-predictable' | 'predictable' | 'balanced' | 'creative' | 'most-creative';

export interface LanguageModelExpected {
  type: LanguageModelMessageType;
  languages?: string[];
  /** The longest answer in tokens (default 1024; never more than the context window has left). */
  maxResponseTokens?: number;
}

export interface LanguageModelMessage {
  role: LanguageModelMessageRole;
  /** Text, or content parts (only `text` parts are supported: others reject with NotSupportedError). */
  content: string | { type: LanguageModelMessageType; value: unknown }[];
  /** Continue this (last, assistant) message instead of starting a new answer. */
  prefix?: boolean;
}

export type LanguageModelPrompt = string | LanguageModelMessage[];

export interface LanguageModelCreateCoreOptions {
  /** Deprecated in the spec (extensions only), honoured here: 0 is greedy. Not together with samplingMode. */
  temperature?: number;
  topK?: number;
  samplingMode?: LanguageModelSamplingMode;
  expectedInputs?: LanguageModelExpected[];
  expectedOutputs?: LanguageModelExpected[];
}

export interface CreateMonitor extends EventTarget {
  ondownloadprogress: ((e: ProgressEvent) => void) | null;
}

export interface LanguageModelCreateOptions extends LanguageModelCreateCoreOptions {
  signal?: AbortSignal;
  monitor?: (m: CreateMonitor) => void;
  initialPrompts?: LanguageModelMessage[];
}

export interface LanguageModelPromptOptions {
  /** A JSON Schema object or a RegExp. */
  responseConstraint?: object | RegExp;
  omitResponseConstraintInput?: boolean;
  signal?: AbortSignal;
}

export interface LanguageModelParams {
  readonly defaultTopK: number;
  readonly maxTopK: number;
  readonly defaultTemperature: number;
  readonly maxTemperature: number;
}

export declare class LanguageModel extends EventTarget {
  private constructor();
  static create(options?: LanguageModelCreateOptions): Promise<LanguageModel>;
  static availability(options?: LanguageModelCreateCoreOptions): Promise<Availability>;
  static params(): Promise<LanguageModelParams>;
  prompt(input: LanguageModelPrompt, options?: LanguageModelPromptOptions): Promise<string>;
  /** Chunks are successive pieces of the answer. */
  promptStreaming(input: LanguageModelPrompt, options?: LanguageModelPromptOptions): ReadableStream<string>;
  append(input: LanguageModelPrompt, options?: { signal?: AbortSignal }): Promise<undefined>;
  measureContextUsage(input: LanguageModelPrompt, options?: LanguageModelPromptOptions): Promise<number>;
  readonly contextUsage: number;
  readonly contextWindow: number;
  oncontextoverflow: ((e: Event) => void) | null;
  /** Deprecated names. */
  measureInputUsage(input: LanguageModelPrompt, options?: LanguageModelPromptOptions): Promise<number>;
  readonly inputUsage: number;
  readonly inputQuota: number;
  onquotaoverflow: ((e: Event) => void) | null;
  readonly topK: number;
  readonly temperature: number;
  readonly samplingMode: LanguageModelSamplingMode;
  readonly expectedInputs: LanguageModelExpected[] | undefined;
  readonly expectedOutputs: LanguageModelExpected[] | undefined;
  clone(options?: { signal?: AbortSignal }): Promise<LanguageModel>;
  destroy(reason?: unknown): void;
}

/** The model a page gets by default: this path resolved against the page's URL. */
export declare const DEFAULT_MODEL_URL: string;

export interface PromptApiConfig {
  /** The GGUF file sessions run (default DEFAULT_MODEL_URL). */
  modelUrl?: string | URL;
  /** Passed to PocketLM.load (contextSize, threads, sha256, ...). */
  loadOptions?: Omit<LoadOptions, 'onProgress' | 'signal'>;
  /** Languages offered (default ['en']): availability() is 'unavailable' for others. */
  languages?: string[];
  /** The longest answer in tokens (default 1024; never more than the context window has left). */
  maxResponseTokens?: number;
}

export declare function configure(options?: PromptApiConfig): void;
/** Defines globalThis.LanguageModel when the browser has none; returns the LanguageModel in effect. */
export declare function install(options?: PromptApiConfig): typeof LanguageModel;
/** The PocketLM that sessions of the configured model share, or null before one loaded. */
export declare function sharedModel(): PocketLM | null;
