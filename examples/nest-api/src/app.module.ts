import { Module } from '@nestjs/common';
import { TollgateModule } from '@tollgate/nestjs';
import { ChatController } from './chat.controller';
import { ChatService } from './chat.service';
import { CHAT_MODEL, chatModel } from './model';
import { tollgateOptions } from './tollgate.config';
import { UsageController } from './usage.controller';
import { UsageService } from './usage.service';

@Module({
  imports: [
    // forRootAsync builds the options (and opens the store) when the app starts, not when this
    // file is imported; it is also where you would inject ConfigService.
    TollgateModule.forRootAsync({ useFactory: () => tollgateOptions(process.env) }),
  ],
  controllers: [ChatController, UsageController],
  providers: [{ provide: CHAT_MODEL, useFactory: () => chatModel(process.env) }, ChatService, UsageService],
})
export class AppModule {}
