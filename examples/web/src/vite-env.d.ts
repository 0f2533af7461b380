/// <reference types="vite/client" />

interface ImportMetaEnv {
  /** the gateway's GraphQL URL, when the page is not told with ?gateway= */
  readonly VITE_RESGRAPH_URL?: string;
}
