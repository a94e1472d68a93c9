import { Body, Controller, Get, HttpCode, Post } from '@nestjs/common';
import { Metered, Metering, SkipMetering, type RequestMetering } from '@tollgate/nestjs';
import { ChatService, type ChatReply, type ChatRequest } from './chat.service';

/**
 * Every route here calls the model, so the whole controller is metered: the guard reserves the
 * estimate before the handler (429 when a limit says no, and the model is not called), the
 * interceptor records `values(reply)` after it.
 */
@Controller('chat')
@Metered<ChatReply>({
  eventType: 'llm.completion',
  // A typical answer's tokens, held while the model runs so concurrent chats cannot overshoot.
  estimate: { tokens: 500 },
  // What the model reports it used replaces the estimate.
  values: (reply) => ({ tokens: reply.usage.totalTokens ?? 0 }),
})
export class ChatController {
  constructor(private readonly chat: ChatService) {}

  @Post()
  @HttpCode(200)
  async send(@Body() body: ChatRequest, @Metering() metering: RequestMetering): Promise<ChatReply> {
    const reply = await this.chat.reply(String(body?.message ?? 'Hello'));
    // The model is a provider, out of the decorator's reach: name it on the event here, so
    // /usage can break usage down by model.
    metering.setDimensions({ model: reply.model });
    return reply;
  }

  /** Which model answers: a lookup, not a chat, so it opts out of the controller's metering. */
  @Get('model')
  @SkipMetering()
  model(): { provider: string; modelId: string } {
    return this.chat.modelInfo;
  }
}
