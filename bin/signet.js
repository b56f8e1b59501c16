#!/usr/bin/env node
// Signet's command line. Node 24 runs the TypeScript sources directly (type stripping): no build step.
import '../src/cli.ts';
