import { GatewayNavLinks as GatewayNavLinks_bad9eaf6dd8a8f48e19e26d9f3ff6f29 } from '@phi-gateway/payload/views'
import { SharedWithMeView as SharedWithMeView_bad9eaf6dd8a8f48e19e26d9f3ff6f29 } from '@phi-gateway/payload/views'
import { ConsentsView as ConsentsView_bad9eaf6dd8a8f48e19e26d9f3ff6f29 } from '@phi-gateway/payload/views'
import { AccessReportView as AccessReportView_bad9eaf6dd8a8f48e19e26d9f3ff6f29 } from '@phi-gateway/payload/views'
import { CollectionCards as CollectionCards_f9c02e79a4aed9a3924487c0cd4cafb1 } from '@payloadcms/next/rsc'

/** @type import('payload').ImportMap */
export const importMap = {
  "@phi-gateway/payload/views#GatewayNavLinks": GatewayNavLinks_bad9eaf6dd8a8f48e19e26d9f3ff6f29,
  "@phi-gateway/payload/views#SharedWithMeView": SharedWithMeView_bad9eaf6dd8a8f48e19e26d9f3ff6f29,
  "@phi-gateway/payload/views#ConsentsView": ConsentsView_bad9eaf6dd8a8f48e19e26d9f3ff6f29,
  "@phi-gateway/payload/views#AccessReportView": AccessReportView_bad9eaf6dd8a8f48e19e26d9f3ff6f29,
  "@payloadcms/next/rsc#CollectionCards": CollectionCards_f9c02e79a4aed9a3924487c0cd4cafb1
}
