/**
 * The language-neutral wire fixtures (spec/fixtures/wire/*.json), shared with
 * the Python client's tests: read from the source tree, since the build copies
 * no JSON into dist.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

// This file runs as dist/spec/helpers/wire-fixtures.js: the repository is three levels up.
const WIRE = fileURLToPath(new URL('../../../spec/fixtures/wire/', import.meta.url))

export interface FrameFixture {
  name: string
  hex: string
  type: number
  id: number
  seq: number
  epoch: number
  checksum: number
  /** UTF-8. */
  payload: string
}

/** A frame of a receive scenario; see receive.json's "about". */
export interface ScenarioFrame {
  type: 'START' | 'DATA' | 'END' | 'ERROR' | 'RESYNC'
  seq: number
  epoch?: number
  intact?: boolean
  length?: number
  resync?: number
}

export type ScenarioVerdict = 'deliver' | 'drop' | 'resynced' | 'unreadable-error' | { nack: { seq: number; offset: number; resync: number } }

export type ScenarioStep = { frame: ScenarioFrame; verdict: ScenarioVerdict } | { lost: true; verdict: ScenarioVerdict }

export interface ReceiveScenario {
  name: string
  steps: ScenarioStep[]
  end: { seq: number; offset: number; nacks: number; awaiting: boolean }
}

function load<T>(name: string): T {
  return JSON.parse(readFileSync(WIRE + name, 'utf8')) as T
}

export const wireFrames = (): FrameFixture[] => load<{ frames: FrameFixture[] }>('frames.json').frames
export const receiveScenarios = (): ReceiveScenario[] => load<{ scenarios: ReceiveScenario[] }>('receive.json').scenarios

/** A frame an exchange's server sends (see exchanges.json's "about"). */
export type ExchangeFrame =
  | { type: 'START' | 'DATA' | 'END' | 'ERROR' | 'RESYNC'; seq: number; epoch?: number; json?: unknown; text?: string; damage?: 'payload' | 'header' }
  | { raw: string }

export interface Exchange {
  name: string
  answers: Record<string, ExchangeFrame[][]>
  expect: { bytes: string } | { error: string }
  sent: Record<string, unknown>[]
}

export const wireExchanges = (): { hello: Record<string, unknown>; exchanges: Exchange[] } => load('exchanges.json')
