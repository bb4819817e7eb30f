package openapi

import (
	"encoding/json"
	"net/http"

	"github.com/swaggest/swgui/v5emb"
)

// UIPath is where every service serves Swagger UI on its own document. The
// page and its assets (everything under UIPath) are a view of the document,
// not operations of the API, so CheckRoutes leaves them out.
const UIPath = "/docs"

// UI returns Swagger UI, reading the document the service serves at
// /openapi.json. Its assets are embedded in the binary by the swgui module,
// so the page works with no network beyond the service itself. Mount it at
// UIPath and at every path under it.
func UI(doc []byte) http.Handler {
	var info struct {
		Info struct {
			Title string `json:"title"`
		} `json:"info"`
	}
	title := "API"
	if json.Unmarshal(doc, &info) == nil && info.Info.Title != "" {
		title = info.Info.Title
	}
	return v5emb.New(title, "/openapi.json", UIPath+"/")
}
