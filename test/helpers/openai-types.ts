/** The response shapes the server tests read, as an OpenAI client sees them. */

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface LegacyLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

export interface CompletionChoice {
  index: number;
  text: string;
  logprobs: LegacyLogprobs | null;
  finish_reason: string | null;
  stop_reason?: string | number | null;
}

export interface Completion {
  id: string;
  object: string;
  created: number;
  model: string;
  choices: CompletionChoice[];
  usage?: Usage | null;
  calibration?: Record<string, unknown>;
}

export interface ChatLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

export interface ChatChoice {
  index: number;
  message?: { role: string; content: string };
  delta?: { role?: string; content?: string };
  logprobs: { content: ChatLogprob[] } | null;
  finish_reason: string | null;
  stop_reason?: string | number | null;
}

export interface ChatCompletion {
  id: string;
  object: string;
  created: number;
  model: string;
  choices: ChatChoice[];
  usage?: Usage | null;
  calibration?: Record<string, unknown>;
}

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | number | null };
}
