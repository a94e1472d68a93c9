// A NestJS chat API metered per customer with @tollgate/nestjs. Start: npm run build && npm start.
//   POST /chat        {"message": "..."}  → {"text", "model", "usage"}   (header x-customer-id)
//   GET  /chat/model                       → which model answers (not metered)
//   GET  /usage                            → the customer's summary, breakdown by model, limits
import { NestFactory } from '@nestjs/core';
import type { AddressInfo } from 'node:net';
import { AppModule } from './app.module';

async function bootstrap() {
  // TollgateModule waits for its store: an unreachable store or an invalid definition fails here.
  const app = await NestFactory.create(AppModule);
  // SIGTERM and SIGINT close the app: the HTTP server, then Tollgate and its store.
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  console.log(`nest-api listening on http://127.0.0.1:${port} (store: ${process.env.TOLLGATE_STORE ?? 'memory'})`);
}

void bootstrap();
