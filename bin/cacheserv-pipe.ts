#!/usr/bin/env node
import { main } from '../lib/cli/server.js'

await main(process.argv)
