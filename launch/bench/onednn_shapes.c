// oneDNN convolution algorithms and layouts on one shape, forward + weight gradient + input gradient, the
// NHWC <-> blocked reorders included (what a layer that keeps NHWC activations pays). How the Winograd rule
// of Sources/Kernels/OneDNNConvolution.swift (usesWinograd) was chosen. Prints per mode: nhwc (direct on our
// layout), blk16 (direct on nChw16c), blk-any (direct, oneDNN's choice), wino (Winograd F(4,3)).
//   gcc -O2 launch/bench/onednn_shapes.c -o /tmp/onednn_shapes -ldnnl
//   OMP_NUM_THREADS=1 /tmp/onednn_shapes N H CIN COUT K STRIDE      e.g. 64 32 64 64 3 1
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
dnnl_engine_t e; dnnl_stream_t st;
static dnnl_memory_t mk(const dnnl_memory_desc_t*d){dnnl_memory_t m; dnnl_memory_create(&m,d,e,DNNL_MEMORY_ALLOCATE); float*h; dnnl_memory_get_data_handle(m,(void**)&h); size_t s=dnnl_memory_desc_get_size(d)/4; for(size_t i=0;i<s;i++)h[i]=(rand()%100)/100.f; return m;}
static dnnl_primitive_t reo(const dnnl_memory_desc_t*a,const dnnl_memory_desc_t*b){ if(dnnl_memory_desc_equal(a,b))return NULL; dnnl_primitive_desc_t pd; dnnl_reorder_primitive_desc_create(&pd,a,e,b,e,NULL); dnnl_primitive_t p; dnnl_primitive_create(&p,pd); return p;}
static void R(dnnl_primitive_t p,dnnl_memory_t a,dnnl_memory_t b){ if(!p)return; dnnl_exec_arg_t x[2]={{DNNL_ARG_FROM,a},{DNNL_ARG_TO,b}}; dnnl_primitive_execute(p,st,2,x);}
int main(int argc,char**argv){
  int n=atoi(argv[1]),h=atoi(argv[2]),c=atoi(argv[3]),o=atoi(argv[4]),k=atoi(argv[5]),s=atoi(argv[6]);
  int pad=k/2, oh=(h+2*pad-k)/s+1;
  dnnl_engine_create(&e,dnnl_cpu,0); dnnl_stream_create(&st,e,dnnl_stream_default_flags);
  dnnl_dims_t xd={n,c,h,h},wd={o,c,k,k},yd={n,o,oh,oh},S={s,s},P={pad,pad},PR={(oh-1)*s+k-h-pad,(oh-1)*s+k-h-pad};
  dnnl_memory_desc_t xu,yu,wu,wa; dnnl_memory_desc_init_by_tag(&xu,4,xd,dnnl_f32,dnnl_nhwc); dnnl_memory_desc_init_by_tag(&yu,4,yd,dnnl_f32,dnnl_nhwc);
  dnnl_memory_desc_init_by_tag(&wu,4,wd,dnnl_f32,dnnl_ohwi); dnnl_memory_desc_init_by_tag(&wa,4,wd,dnnl_f32,dnnl_format_tag_any);
  double fl=2.0*n*oh*oh*o*c*k*k*3;
  const char*names[]={"nhwc","blk16","blk-any","wino"};
  for(int mode=0;mode<4;mode++){
    dnnl_memory_desc_t xm,ym; dnnl_format_tag_t t= mode==0?dnnl_nhwc: mode==1?dnnl_nChw16c: dnnl_format_tag_any;
    dnnl_memory_desc_init_by_tag(&xm,4,xd,dnnl_f32,t); dnnl_memory_desc_init_by_tag(&ym,4,yd,dnnl_f32,t);
    dnnl_alg_kind_t a= mode==3?dnnl_convolution_winograd:dnnl_convolution_direct;
    dnnl_convolution_desc_t d[3]; dnnl_primitive_desc_t pd[3]; int ok=1; const char*impl[3];
    dnnl_convolution_forward_desc_init(&d[0],dnnl_forward_training,a,&xm,&wa,NULL,&ym,S,P,PR);
    dnnl_convolution_backward_data_desc_init(&d[1],a,&xm,&wa,&ym,S,P,PR);
    dnnl_convolution_backward_weights_desc_init(&d[2],a,&xm,&wa,NULL,&ym,S,P,PR);
    for(int i=0;i<3;i++){ if(dnnl_primitive_desc_create(&pd[i],&d[i],NULL,e,i?pd[0]:NULL)){ok=0;break;} dnnl_primitive_desc_query(pd[i],dnnl_query_impl_info_str,0,&impl[i]);}
    if(!ok){printf("  %-7s unavailable\n",names[mode]);continue;}
    const dnnl_memory_desc_t *xb=dnnl_primitive_desc_query_md(pd[0],dnnl_query_src_md,0),*yb=dnnl_primitive_desc_query_md(pd[0],dnnl_query_dst_md,0);
    const dnnl_memory_desc_t *w0=dnnl_primitive_desc_query_md(pd[0],dnnl_query_weights_md,0),*w1=dnnl_primitive_desc_query_md(pd[1],dnnl_query_weights_md,0),*w2=dnnl_primitive_desc_query_md(pd[2],dnnl_query_diff_weights_md,0);
    const dnnl_memory_desc_t *x1=dnnl_primitive_desc_query_md(pd[1],dnnl_query_diff_src_md,0),*y1=dnnl_primitive_desc_query_md(pd[1],dnnl_query_diff_dst_md,0);
    const dnnl_memory_desc_t *x2=dnnl_primitive_desc_query_md(pd[2],dnnl_query_src_md,0),*y2=dnnl_primitive_desc_query_md(pd[2],dnnl_query_diff_dst_md,0);
    int same=dnnl_memory_desc_equal(xb,x1)&&dnnl_memory_desc_equal(xb,x2)&&dnnl_memory_desc_equal(yb,y1)&&dnnl_memory_desc_equal(yb,y2);
    dnnl_memory_t X=mk(&xu),Y=mk(&yu),W=mk(&wu),DW=mk(&wu),DX=mk(&xu),DY=mk(&yu),XB=mk(xb),YB=mk(yb),DYB=mk(yb),DXB=mk(xb),W0=mk(w0),W1=mk(w1),W2=mk(w2);
    dnnl_primitive_t ryin=reo(&yu,yb),rx=reo(&xu,xb),ry=reo(yb,&yu),rdx=reo(xb,&xu),rw0=reo(&wu,w0),rw1=reo(&wu,w1),rw2=reo(w2,&wu);
    dnnl_primitive_t p[3]; for(int i=0;i<3;i++){dnnl_primitive_create(&p[i],pd[i]);}
    dnnl_memory_t sp[3]; for(int i=0;i<3;i++) sp[i]=mk(dnnl_primitive_desc_query_md(pd[i],dnnl_query_scratchpad_md,0));
    double tt[3]={1e9,1e9,1e9};
    for(int rep=0;rep<8;rep++){
      double t0=now();
      R(rw0,W,W0); R(rx,X,XB);
      {dnnl_exec_arg_t a[4]={{DNNL_ARG_SRC,rx?XB:X},{DNNL_ARG_WEIGHTS,rw0?W0:W},{DNNL_ARG_DST,ry?YB:Y},{DNNL_ARG_SCRATCHPAD,sp[0]}}; dnnl_primitive_execute(p[0],st,4,a);}
      R(ry,YB,Y); dnnl_stream_wait(st); double t1=now();
      R(rx,X,XB); R(ryin,DY,DYB); // weights grad: x again + dy
      {dnnl_exec_arg_t a[4]={{DNNL_ARG_SRC,rx?XB:X},{DNNL_ARG_DIFF_DST,rx?DYB:DY},{DNNL_ARG_DIFF_WEIGHTS,rw2?W2:DW},{DNNL_ARG_SCRATCHPAD,sp[2]}}; dnnl_primitive_execute(p[2],st,4,a);}
      R(rw2,W2,DW); dnnl_stream_wait(st); double t2=now();
      R(rw1,W,W1);
      {dnnl_exec_arg_t a[4]={{DNNL_ARG_DIFF_DST,rx?DYB:DY},{DNNL_ARG_WEIGHTS,rw1?W1:W},{DNNL_ARG_DIFF_SRC,rx?DXB:DX},{DNNL_ARG_SCRATCHPAD,sp[1]}}; dnnl_primitive_execute(p[1],st,4,a);}
      R(rdx,DXB,DX); dnnl_stream_wait(st); double t3=now();
      if(rep>=2){ if(t1-t0<tt[0])tt[0]=t1-t0; if(t2-t1<tt[1])tt[1]=t2-t1; if(t3-t2<tt[2])tt[2]=t3-t2; }
    }
    double tot=tt[0]+tt[1]+tt[2];
    printf("  %-7s fwd %7.3f bww %7.3f bwd %7.3f total %7.3f ms  %5.0f GF/s  %s|%s|%s%s\n",names[mode],tt[0]*1e3,tt[1]*1e3,tt[2]*1e3,tot*1e3,fl/tot/1e9,impl[0],impl[2],impl[1],same?"":" (mds differ)");
  }
}
