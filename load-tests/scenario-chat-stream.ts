/**
 * Scenario (b): streaming POST /v1/chat/completions (SSE) against `attune serve` defaults. Tokens
 * are counted from the usage chunk (`stream_options.include_usage`), TTFT is send → first chunk
 * with generated text, read off the socket as it arrives.
 *   node dist/load-tests/scenario-chat-stream.js
 */
import { isMain, runMain, runScenario, type ScenarioOptions, type ScenarioResult } from './scenario.js';
import { chatMessages, loadPrompts, samplingFor, type LoadRequest } from './workload.js';

export function runChatStream(opts: ScenarioOptions = {}): Promise<ScenarioResult> {
  const prompts = loadPrompts();
  return runScenario(
    {
      title: '(b) streaming /v1/chat/completions',
      streaming: true,
      defaults: { connections: 24, amount: 1000, maxSeconds: 40, serverFlags: [] },
      make: (i): LoadRequest => ({
        path: '/v1/chat/completions',
        body: { messages: chatMessages(i, prompts), ...samplingFor(i), stream: true, stream_options: { include_usage: true } },
        stream: true,
        label: 'chat',
      }),
    },
    opts,
  );
}

if (isMain(import.meta.url)) runMain(() => runChatStream());
