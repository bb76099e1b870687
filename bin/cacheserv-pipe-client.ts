#!/usr/bin/env node
import { main } from '../lib/cli/client.js'

await main(process.argv)
