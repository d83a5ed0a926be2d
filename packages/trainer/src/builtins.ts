/** The schedules the trainer can always use, even with an empty container (from @topiary/scheduler-basic). */
import type { Scheduler } from '@topiary/kernel';
import { basicSchedulers } from '@topiary/scheduler-basic';

export const builtinSchedulers: readonly Scheduler[] = basicSchedulers;
