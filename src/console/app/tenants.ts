import { api } from "./api.ts"
import { useLoad } from "./load.ts"

/** The hosts a Tenant filter offers: every hook the session may see (a tenant sees its own only). */
export const useTenantHosts = () => {
  const { loaded } = useLoad((signal) => api.hooks.list(signal), [])
  return loaded.state === "done" && loaded.result.ok ? loaded.result.value.hooks.map((hook) => hook.host) : []
}
