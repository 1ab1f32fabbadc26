package kube

import (
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/slipway-dev/slipway/internal/secret"
)

// authzReview builds the question "may I verb resource here?".
type authzReview struct{}

func (authzReview) of(ns, verb, resource, sub string) *authorizationv1.SelfSubjectAccessReview {
	return &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Resource: resource, Subresource: sub}}}
}

func maskerOf(vals []string) *strings.Replacer { return secret.Masker(vals) }
