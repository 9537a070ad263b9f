import type { Overview } from "../types.ts"
import { shortTime } from "../format.ts"

const WIDTH = 600
const HEIGHT = 120

/**
 * Delivery attempts per minute over the hour, succeeded and failed stacked:
 * a plain SVG (no chart library). Failed bars are hatched as well as coloured,
 * and the figures are in a table below for anyone who cannot see the chart.
 */
export const MinuteChart = ({ minutes }: { minutes: Overview["minutes"] }) => {
  const highest = Math.max(1, ...minutes.map((m) => m.succeeded + m.failed))
  const step = WIDTH / Math.max(1, minutes.length)
  const total = minutes.reduce((sum, m) => ({ succeeded: sum.succeeded + m.succeeded, failed: sum.failed + m.failed }), { succeeded: 0, failed: 0 })
  const y = (n: number) => (n / highest) * (HEIGHT - 4)
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={`Delivery attempts per minute over the last hour: ${total.succeeded} succeeded, ${total.failed} failed`}>
        <defs>
          <pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
            <rect width="4" height="4" class="bar-failed" />
            <line x1="0" y1="0" x2="0" y2="4" class="hatch-line" />
          </pattern>
        </defs>
        <line x1="0" y1={HEIGHT - 0.5} x2={WIDTH} y2={HEIGHT - 0.5} class="axis" />
        {minutes.map((m, i) => (
          <g key={m.at}>
            <rect x={i * step + 1} width={step - 2} y={HEIGHT - y(m.succeeded)} height={y(m.succeeded)} class="bar-ok" />
            <rect x={i * step + 1} width={step - 2} y={HEIGHT - y(m.succeeded) - y(m.failed)} height={y(m.failed)} fill="url(#hatch)" />
          </g>
        ))}
      </svg>
      <figcaption>
        <span class="legend ok">■ succeeded</span> <span class="legend bad">▨ failed</span> · most in a minute: {highest}
      </figcaption>
      <details>
        <summary>Attempts per minute as a table</summary>
        <table>
          <caption>Delivery attempts per minute</caption>
          <thead>
            <tr><th scope="col">Minute</th><th scope="col" class="num">Succeeded</th><th scope="col" class="num">Failed</th></tr>
          </thead>
          <tbody>
            {minutes.filter((m) => m.succeeded + m.failed > 0).map((m) => (
              <tr key={m.at}><td>{shortTime(m.at)}</td><td class="num">{m.succeeded}</td><td class="num">{m.failed}</td></tr>
            ))}
          </tbody>
        </table>
      </details>
    </figure>
  )
}
