/** What every admin command shares: the API's typed client that runs it, and how its failures read. */
import { Command } from "@effect/cli"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { Console, Duration, Effect, ParseResult, Redacted } from "effect"
import { isAnswered } from "../domain/Errors.ts"
import { AdminApi } from "../http/Api.ts"
import { AnsweredNo, Failed, Usage } from "./Failures.ts"
import type { Connection } from "./Inputs.ts"

// A test send waits for the tenant (up to delivery.timeout), so this is well above any sane per-attempt timeout.
const ANSWER_TIMEOUT = Duration.seconds(60)

const describeCause = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

const describeFailure = (url: string, error: unknown): string => {
  if (isAnswered(error)) return `error: ${error.status} ${error.code}: ${error.message}`
  if (HttpClientError.isHttpClientError(error)) {
    return error._tag === "RequestError"
      ? `error: cannot reach the router at ${url}: ${describeCause(error.cause ?? error)}`
      : `error: unexpected answer from the router (HTTP ${error.response.status}): ${error.description ?? error.reason}`
  }
  if (ParseResult.isParseError(error)) return `error: unexpected answer from the router: ${ParseResult.TreeFormatter.formatErrorSync(error)}`
  return `error: ${describeCause(error)}`
}

/** The API's client for this router and token: every request and answer typed by the API's definition. */
export const makeClient = ({ url, token }: Connection) =>
  HttpApiClient.make(AdminApi, { baseUrl: url, transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(Redacted.value(token))) })
export type Client = Effect.Effect.Success<ReturnType<typeof makeClient>>

/** Runs one admin command: any failure is printed as one `error: …` line (exit 1). */
export const withClient =
  <I extends { readonly connection: Connection }, A>(use: (client: Client, input: I) => Effect.Effect<A, unknown>) =>
  (input: I) =>
    Effect.flatMap(makeClient(input.connection), (client) => use(client, input)).pipe(
      Effect.timeoutFail({
        duration: ANSWER_TIMEOUT,
        onTimeout: () => new Failed({ message: `error: cannot reach the router at ${input.connection.url}: no answer within ${Duration.format(ANSWER_TIMEOUT)}` })
      }),
      Effect.mapError((error) => (error instanceof Failed || error instanceof AnsweredNo ? error : new Failed({ message: describeFailure(input.connection.url, error) }))),
      Effect.provide(FetchHttpClient.layer)
    )

export const print = (text: string) => Console.log(text)

/** A group of commands: without one of them it is a usage error, as before (@effect/cli alone would print its help, exit 0). */
export const group = <const Name extends string>(name: Name) =>
  Command.make(name, {}, () => Effect.fail(new Usage({ message: `"${name}" needs a command (${name} --help lists them)` })))
