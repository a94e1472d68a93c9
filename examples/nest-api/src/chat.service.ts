import { Inject, Injectable } from '@nestjs/common';
import { generateText, type LanguageModelUsage } from 'ai';
import { CHAT_MODEL, type ChatModel } from './model';

export interface ChatRequest {
  message?: string;
}

export interface ChatReply {
  text: string;
  model: string;
  usage: LanguageModelUsage;
}

@Injectable()
export class ChatService {
  constructor(@Inject(CHAT_MODEL) private readonly model: ChatModel) {}

  /** Which model answers. */
  get modelInfo(): { provider: string; modelId: string } {
    return { provider: this.model.provider, modelId: this.model.modelId };
  }

  async reply(message: string): Promise<ChatReply> {
    const result = await generateText({ model: this.model, prompt: message });
    return { text: result.text, model: this.model.modelId, usage: result.usage };
  }
}
