/**
 * Stages joined into one Duplex with pumpify: writes go to the first stage,
 * reads come from the last, backpressure runs end to end, and an error in any
 * stage tears every stage down.
 *
 * pumpify tears a destroyed chain down through its first stage (it makes that
 * stage emit an error for pump to spread). Once the first stage has ended —
 * the peer finished sending and its last request is still being answered —
 * that error goes nowhere, and the stages after it stay alive: a read keeps
 * its file open. Here a chain that closes destroys each of its stages.
 *
 * The stages are readable-stream 4 (the implementation through2 builds on);
 * pumpify's own Duplex is readable-stream 3 (duplexify 4 pins it). pump joins
 * them with public stream events only, so the two need not be the same.
 */
import pumpify from 'pumpify'
import type { Duplex } from 'readable-stream'

export function joinStages(...stages: Duplex[]): pumpify {
  const chain = new pumpify(...stages)
  chain.once('close', () => {
    for (const stage of stages) if (!stage.destroyed) stage.destroy()
  })
  return chain
}
