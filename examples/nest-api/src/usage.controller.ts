import { Controller, Get } from '@nestjs/common';
import { CustomerId } from './customer';
import { UsageService } from './usage.service';

@Controller('usage')
export class UsageController {
  constructor(private readonly usage: UsageService) {}

  @Get()
  report(@CustomerId() customerId: string) {
    return this.usage.report(customerId);
  }
}
