package server

import (
	"context"
	"net/http"
	"strconv"

	"github.com/slipway-dev/slipway/internal/deploy"
	"github.com/slipway-dev/slipway/internal/store"
	"github.com/slipway-dev/slipway/internal/taskdef"
)

// DeployRequest starts a deployment.
type DeployRequest struct {
	TaskDef  string          `json:"task_definition"`
	Strategy string          `json:"strategy"`
	Config   string          `json:"config"`
	AppSpec  string          `json:"appspec"`
	Settings deploy.Settings `json:"settings"`
}

func (s *Server) createDeployment(w http.ResponseWriter, r *http.Request) {
	var req DeployRequest
	svc, ok := s.decodeForService(w, r, &req)
	if !ok {
		return
	}
	family, rev, err := parseTaskDefRef(req.TaskDef)
	if err != nil {
		s.writeError(w, r, errBadRequest("task_definition", "%v", err))
		return
	}
	td, err := s.db.GetTaskDef(r.Context(), family, rev)
	if err != nil {
		s.writeError(w, r, errBadRequest("task_definition", "%v", err))
		return
	}
	def, _, err := taskdef.Parse(td.Body)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.AppSpec != "" {
		spec, err := deploy.ParseAppSpec([]byte(req.AppSpec))
		if err != nil {
			s.writeError(w, r, errBadRequest("appspec", "%v", err))
			return
		}
		if svc.LoadBalancer != nil && (spec.ContainerName != svc.LoadBalancer.ContainerName || spec.ContainerPort != svc.LoadBalancer.ContainerPort) {
			s.writeError(w, r, errBadRequest("appspec", "appspec LoadBalancerInfo %s:%d differs from the service's load balancer %s:%d",
				spec.ContainerName, spec.ContainerPort, svc.LoadBalancer.ContainerName, svc.LoadBalancer.ContainerPort))
			return
		}
		if req.Settings.Hooks == nil {
			req.Settings.Hooks = map[string]deploy.Hook{}
		}
		for ev, h := range spec.Hooks {
			req.Settings.Hooks[ev] = h
		}
		if req.Strategy == "" {
			req.Strategy = "blue-green" // an appspec means CodeDeploy's blue/green
		}
	}
	// The new revision must still carry the load-balanced container and port.
	if svc.LoadBalancer != nil {
		l := *svc.LoadBalancer
		if err := deploy.ValidateLB(&l, def); err != nil {
			s.writeError(w, r, errBadRequest("task_definition", "%s:%d cannot take this service's traffic: %v", td.Family, td.Revision, err))
			return
		}
	}
	tok, _ := Caller(r.Context())
	d, err := s.deploys.Create(r.Context(), deploy.Request{App: svc.App, Env: svc.Env, Service: svc.Name, Family: td.Family, Revision: td.Revision,
		Strategy: req.Strategy, Config: req.Config, Settings: req.Settings, By: tok.Name})
	if err != nil {
		s.writeError(w, r, deployError(err))
		return
	}
	writeJSON(w, http.StatusCreated, d)
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ds, err := s.db.ListDeployments(r.Context(), q.Get("app"), q.Get("env"), q.Get("service"), 100)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ds)
}

// DeploymentDetail is a deployment with its timeline and the live layout.
type DeploymentDetail struct {
	store.Deployment
	Events []store.DeploymentEvent `json:"events"`
	Layout store.Layout            `json:"layout"`
}

func deploymentID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, errBadRequest("id", "deployment id %q must be a positive number", r.PathValue("id"))
	}
	return id, nil
}

func (s *Server) showDeployment(w http.ResponseWriter, r *http.Request) {
	id, err := deploymentID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	d, err := s.deploymentDetail(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) deploymentDetail(ctx context.Context, id int64) (DeploymentDetail, error) {
	d, err := s.db.GetDeployment(ctx, id)
	if err != nil {
		return DeploymentDetail{}, err
	}
	out := DeploymentDetail{Deployment: d}
	if out.Events, err = s.db.DeploymentEvents(ctx, id); err != nil {
		return out, err
	}
	if svc, err := s.db.GetService(ctx, d.App, d.Env, d.Service); err == nil {
		out.Layout = svc.EffectiveLayout()
	}
	return out, nil
}

func (s *Server) stopDeployment(w http.ResponseWriter, r *http.Request) {
	id, err := deploymentID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.deploys.Stop(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"message": "deployment " + strconv.FormatInt(id, 10) + " is being stopped and rolled back"})
}

func (s *Server) promoteDeployment(w http.ResponseWriter, r *http.Request) {
	id, err := deploymentID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	tok, _ := Caller(r.Context())
	if err := s.deploys.Promote(r.Context(), id, tok.Name); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"message": "deployment " + strconv.FormatInt(id, 10) + " is promoted: green takes all production traffic after its checks"})
}

func (s *Server) rollbackService(w http.ResponseWriter, r *http.Request) {
	tok, _ := Caller(r.Context())
	msg, err := s.deploys.Rollback(r.Context(), r.PathValue("app"), r.PathValue("env"), r.PathValue("name"), tok.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"message": msg})
}
