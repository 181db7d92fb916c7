import { Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';

/** Props of the migration stack. */
export interface ShifuMigrateStackProps extends StackProps {
  /**
   * Log retention for the migration's functions and state machines, in days.
   * @default 30
   */
  readonly logRetentionDays?: number;
}

/**
 * The migration's AWS side. It composes constructs only; the Lambda functions, state machines, archive
 * bucket, schedule and alarms are added by the issues that build them (see README, "What exists today").
 */
export class ShifuMigrateStack extends Stack {
  readonly logRetentionDays: number;

  constructor(scope: Construct, id: string, props: ShifuMigrateStackProps = {}) {
    super(scope, id, props);
    this.logRetentionDays = props.logRetentionDays ?? 30;
  }
}
