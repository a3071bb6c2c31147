package gateway

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"fleetbox.dev/apiserver/internal/httpjson"
	"fleetbox.dev/apiserver/internal/lifecycle"
	"fleetbox.dev/schema"
	"fleetbox.dev/schema/e2b"
)

// codeInterpreterRoutes serves the code interpreter's surface (port 49999).
func (g *Gateway) codeInterpreterRoutes() http.Handler {
	r := chi.NewRouter()
	r.Post("/execute", g.execute)
	r.Get("/execute/ws", g.executeWS)
	r.Post("/contexts", g.createContext)
	r.Get("/contexts", g.listContexts)
	r.Delete("/contexts/{contextID}", g.deleteContext)
	r.Post("/contexts/{contextID}/restart", g.restartContext)
	r.Get("/health", func(w http.ResponseWriter, r *http.Request) { httpjson.Write(w, http.StatusOK, "OK") })
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		httpjson.Error(w, nil, schema.Errorf(http.StatusNotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
	return r
}

func (g *Gateway) createContext(w http.ResponseWriter, r *http.Request) {
	var req e2b.CreateContext
	if err := httpjson.Decode(w, r, httpjson.MaxBody, &req, false); err != nil {
		httpjson.Error(w, g.Log, err)
		return
	}
	creq := schema.ContextCreateRequest{}
	if req.Language != nil {
		creq.Language = normalizeLanguage(*req.Language)
	}
	if req.Cwd != nil {
		creq.Cwd = *req.Cwd
	}
	id := recordOf(r.Context()).ID
	c, err := lifecycle.Request[schema.CodeContext](r.Context(), g.Sandboxes, id, schema.OpContextCreate, creq)
	if err != nil {
		g.opError(w, id, err)
		return
	}
	httpjson.Write(w, http.StatusOK, e2b.Context(c))
}

func (g *Gateway) listContexts(w http.ResponseWriter, r *http.Request) {
	id := recordOf(r.Context()).ID
	cs, err := lifecycle.Request[[]schema.CodeContext](r.Context(), g.Sandboxes, id, schema.OpContextList, schema.Empty{})
	if err != nil {
		g.opError(w, id, err)
		return
	}
	out := make([]e2b.Context, 0, len(cs))
	for _, c := range cs {
		out = append(out, e2b.Context(c))
	}
	httpjson.Write(w, http.StatusOK, out)
}

func (g *Gateway) deleteContext(w http.ResponseWriter, r *http.Request) {
	g.contextOp(w, r, schema.OpContextDelete)
}

func (g *Gateway) restartContext(w http.ResponseWriter, r *http.Request) {
	g.contextOp(w, r, schema.OpContextRestart)
}

func (g *Gateway) contextOp(w http.ResponseWriter, r *http.Request, op string) {
	id := recordOf(r.Context()).ID
	cid := chi.URLParam(r, "contextID")
	if !schema.ValidToken(cid) {
		httpjson.Error(w, nil, schema.Errorf(http.StatusNotFound, "Context %s not found", cid))
		return
	}
	if _, err := lifecycle.Request[schema.Empty](r.Context(), g.Sandboxes, id, op, schema.ContextRequest{ID: cid}); err != nil {
		g.opError(w, id, err)
		return
	}
	httpjson.Write(w, http.StatusOK, nil)
}

// opError answers a failed operation: a gone owner is the proxy's 502, anything else keeps its code.
func (g *Gateway) opError(w http.ResponseWriter, id string, err error) {
	if isOwnerGone(err) {
		proxyError(w, id, 0, "The sandbox was not found")
		return
	}
	httpjson.Error(w, g.Log, err)
}

// normalizeLanguage maps the code interpreter's language aliases to their canonical names.
func normalizeLanguage(l string) string {
	switch l {
	case "js":
		return "javascript"
	case "ts":
		return "typescript"
	case "py", "python3":
		return schema.LanguagePython
	}
	return l
}
